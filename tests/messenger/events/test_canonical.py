"""Canonical JSON (Matrix spec, Appendices): spec examples and properties."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.events.canonical import (
    MAX_SAFE_INTEGER,
    MIN_SAFE_INTEGER,
    CanonicalJsonError,
    canonical_json,
    parse_json,
)

# Strings without lone surrogates (they have no UTF-8 form).
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
safe_ints = st.integers(MIN_SAFE_INTEGER, MAX_SAFE_INTEGER)
json_values = st.recursive(
    st.none() | st.booleans() | safe_ints | text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(text, children, max_size=4),
    max_leaves=20)


@pytest.mark.parametrize(("source", "expected"), [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
    ('{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'),
    ('{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": '
     '{"display_name": "John Doe", "three_pids": [{"medium": "email", "address": '
     '"john.doe@example.org"}, {"medium": "msisdn", "address": "123456789"}]}}}',
     '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
     '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
     '{"address":"123456789","medium":"msisdn"}]},"success":true}}'),
])
def test_spec_examples(source: str, expected: str) -> None:
    assert canonical_json(parse_json(source)) == expected.encode("utf-8")


def test_control_characters_use_shortest_escapes() -> None:
    assert canonical_json({"a": "\n\t\u0001\"\\"}) == b'{"a":"\\n\\t\\u0001\\"\\\\"}'


@pytest.mark.parametrize("bad", [
    {"a": 1.5}, {"a": float("nan")}, {"a": MAX_SAFE_INTEGER + 1}, {"a": MIN_SAFE_INTEGER - 1},
    {1: "x"}, {"a": "\ud800"}, {"a": b"bytes"}, {"a": {1, 2}},
])
def test_refuses_values_without_a_canonical_form(bad: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        canonical_json(bad)


@pytest.mark.parametrize("text_in", ["NaN", '{"a": Infinity}', '{"a": -Infinity}', "[" * 5000])
def test_parser_refuses_non_json(text_in: str) -> None:
    with pytest.raises(ValueError):
        parse_json(text_in)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@given(json_values, st.randoms(use_true_random=False))
def test_stable_under_key_reordering(value: Any, rng: random.Random) -> None:
    assert canonical_json(_shuffled(value, rng)) == canonical_json(value)


@given(json_values)
def test_round_trips_and_is_a_fixed_point(value: Any) -> None:
    encoded = canonical_json(value)
    assert json.loads(encoded) == value
    assert canonical_json(parse_json(encoded)) == encoded
    # No insignificant whitespace: the same as the standard library's most
    # compact, key-sorted, non-ASCII-preserving form (spec appendix 3.1).
    compact = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert encoded == compact.encode("utf-8")


@given(json_values)
def test_agrees_with_pretty_printed_input(value: Any) -> None:
    pretty = json.dumps(value, indent=3, ensure_ascii=True)
    assert canonical_json(parse_json(pretty)) == canonical_json(value)


@given(st.binary(max_size=200))
def test_parser_never_crashes_on_bytes(data: bytes) -> None:
    try:
        value = parse_json(data)
    except ValueError:
        return
    try:
        canonical_json(value)
    except CanonicalJsonError:
        pass


def stdlib_canonical(value: Any) -> bytes:
    """The spec's canonical form as Python's json module writes it (the reference
    Synapse's canonicaljson follows)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      allow_nan=False).encode("utf-8")


# Keys from all planes: sorting by UTF-16 units would put astral ones before U+E000..FFFF.
wide_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6) | st.sampled_from(
    ["\uffff", "\ue000", "\U0001f600", "\x7f", "\x00", "\u2028", "\\", '"', "é"])


@given(st.recursive(
    st.none() | st.booleans() | safe_ints | wide_text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(wide_text, children, max_size=6), max_leaves=30))
def test_bytes_are_those_of_the_stdlib_reference(value: Any) -> None:
    assert canonical_json(value) == stdlib_canonical(value)

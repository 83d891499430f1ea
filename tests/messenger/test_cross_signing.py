"""Cross-signing keys and signed JSON (spec "Cross-signing", Appendices "Signing JSON"):
the key parser never fails but with InvalidKey, keys a client makes parse back,
and signatures verify exactly when nothing signed was changed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.cross_signing import (
    InvalidKey,
    decode_base64,
    parse_cross_signing_key,
    verify_signature,
    with_signatures,
)
from tests.messenger.signed_json import SigningKey, cross_signing_key, unpadded

USER = "@anna:schule.test"
USAGES = st.sampled_from(["master", "self_signing", "user_signing"])
# Whatever parse_json may hand over: floats and lone surrogates included.
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(text, children, max_size=4),
    max_leaves=20)
KEY = SigningKey()


@given(any_json, USAGES)
def test_parser_refuses_anything_but_with_invalid_key(value: Any, usage: str) -> None:
    try:
        parsed = parse_cross_signing_key(value, USER, usage)
    except InvalidKey:
        return
    assert parsed.usage == usage and parsed.content == value


@given(USAGES, st.dictionaries(text.filter(lambda k: k not in (
    "user_id", "usage", "keys", "signatures")), plain_json, max_size=3))
def test_a_clients_key_parses_back(usage: str, extra: dict[str, Any]) -> None:
    key = SigningKey()
    value = {**extra, **KEY.sign(cross_signing_key(USER, usage, key), USER)}
    parsed = parse_cross_signing_key(value, USER, usage)
    assert parsed.public_key == key.public
    assert parsed.key_id == f"ed25519:{key.public}"
    assert parsed.content == value


@pytest.mark.parametrize("change", [
    {"user_id": "@ben:schule.test"},
    {"usage": ["user_signing"]},
    {"usage": "master"},
    {"keys": {}},
    {"keys": {"curve25519:abc": "abc"}},
    {"keys": {"ed25519:AAAA": "AAAA"}},  # three bytes, not an ed25519 key
    {"signatures": {USER: {"ed25519:x": 1}}},
    {"weight": 1.5},  # no canonical JSON: nobody could sign it
])
def test_malformed_master_keys(change: dict[str, Any]) -> None:
    value = {**cross_signing_key(USER, "master", KEY), **change}
    with pytest.raises(InvalidKey):
        parse_cross_signing_key(value, USER, "master")


@given(st.dictionaries(text, plain_json, max_size=5), text, plain_json)
def test_signatures_verify_until_anything_signed_changes(content: dict[str, Any], field: str,
                                                        new_value: Any) -> None:
    signed = KEY.sign(content, USER)
    key_id = f"ed25519:{KEY.public}"
    assert verify_signature(signed, USER, key_id, KEY.public)
    assert not verify_signature(signed, "@ben:schule.test", key_id, KEY.public)
    assert not verify_signature(signed, USER, key_id, SigningKey().public)
    # signatures and unsigned are outside what is signed
    assert verify_signature({**signed, "unsigned": {"note": 1}}, USER, key_id, KEY.public)
    if field in ("signatures", "unsigned") or content.get(field, object()) == new_value:
        return
    assert not verify_signature({**signed, field: new_value}, USER, key_id, KEY.public)


@given(st.text(max_size=60))
def test_base64_decoding_fails_only_with_value_error(value: str) -> None:
    try:
        decoded = decode_base64(value)
    except ValueError:
        return
    assert unpadded(decoded) == value.rstrip("=")


def test_merged_signatures_keep_the_uploaded_ones() -> None:
    signed = KEY.sign(cross_signing_key(USER, "master", KEY), USER)
    merged = with_signatures(signed, [("@ben:schule.test", "ed25519:B", "sig")])
    assert merged["signatures"] == {**signed["signatures"],
                                    "@ben:schule.test": {"ed25519:B": "sig"}}
    assert "@ben:schule.test" not in signed["signatures"]  # the stored object is untouched

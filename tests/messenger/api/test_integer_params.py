"""The integer guards of the Matrix HTTP edge (messenger.api.http): property tests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.api.errors import MatrixError
from messenger.api.http import MAX_STORED_INT, parse_int, parse_request_json


@given(st.text(max_size=40))
def test_parse_int_answers_a_number_in_range_or_invalid_param(text: str) -> None:
    try:
        value = parse_int(text, "n", low=-MAX_STORED_INT - 1)
    except MatrixError as exc:
        assert (exc.status, exc.errcode) == (400, "M_INVALID_PARAM")
    else:
        assert -MAX_STORED_INT - 1 <= value <= MAX_STORED_INT and int(text) == value
        assert text.removeprefix("-").isascii() and text.removeprefix("-").isdigit()


@given(st.integers())
def test_parse_int_round_trips_exactly_the_stored_range(n: int) -> None:
    if 0 <= n <= MAX_STORED_INT:
        assert parse_int(str(n), "n") == n
    else:
        with pytest.raises(MatrixError):
            parse_int(str(n), "n")


@pytest.mark.parametrize("text", ["١٢", " 1", "1_0", "+1", "0x1", "", "-"])
def test_parse_int_takes_only_ascii_decimal(text: str) -> None:
    with pytest.raises(MatrixError):
        parse_int(text, "n", low=-10)


@given(st.integers())
def test_body_integers_outside_the_canonical_range_are_bad_json(n: int) -> None:
    try:
        value = parse_request_json(f'{{"n": {n}}}')
    except MatrixError as exc:
        assert abs(n) > 2**53 - 1 and exc.errcode == "M_BAD_JSON"
    else:
        assert value == {"n": n} and abs(n) <= 2**53 - 1


@pytest.mark.parametrize("text", ['{"n": 1e400}', '{"n": -1e999}', '{"n": NaN}', "{"])
def test_body_without_a_finite_number_is_refused(text: str) -> None:
    with pytest.raises(MatrixError) as caught:
        parse_request_json(text)
    assert caught.value.status == 400

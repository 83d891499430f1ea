"""Canonical JSON (Matrix spec, Appendices: "Canonical JSON").

The signed and hashed form of every event: keys sorted by code point, no
insignificant whitespace, UTF-8 without escaping non-ASCII, shortest escapes,
and integers only, within [-(2**53)+1, 2**53-1].  Floats, NaN and lone
surrogates are refused because two servers could not agree on their bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

MAX_SAFE_INTEGER = 2**53 - 1
MIN_SAFE_INTEGER = -(2**53) + 1
MAX_DEPTH = 100  # events nest far less; deeper input is an attack, not data


class CanonicalJsonError(ValueError):
    """A value that has no canonical JSON form (float, out-of-range int, bad key...)."""


def check_canonical_value(value: Any, _depth: int = 0) -> None:
    """Raise ``CanonicalJsonError`` unless ``value`` has a canonical JSON form."""
    if _depth > MAX_DEPTH:
        raise CanonicalJsonError("JSON nested too deeply")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalJsonError(f"integer out of range: {value}")
        return
    if isinstance(value, float):
        raise CanonicalJsonError("floats are not allowed in canonical JSON")
    if isinstance(value, str):
        _check_text(value)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJsonError("object keys must be strings")
            _check_text(key)
            check_canonical_value(item, _depth + 1)
        return
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for item in value:
            check_canonical_value(item, _depth + 1)
        return
    raise CanonicalJsonError(f"not a JSON value: {type(value).__name__}")


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalJsonError("string is not valid Unicode (lone surrogate)") from None


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (spec Appendices, Canonical JSON)."""
    check_canonical_value(value)
    # orjson writes exactly the spec's form (the stdlib's ``json.dumps(value,
    # ensure_ascii=False, separators=(",", ":"), sort_keys=True)``, which the tests
    # compare it with), about ten times faster: every event is hashed, signed and
    # checked through here several times, on both sides of federation.  No
    # whitespace, non-ASCII as UTF-8, the shortest escapes for control characters
    # (\n, \t, ... else \u00XX) and keys sorted by code point (the order of their
    # UTF-8 bytes).  Values it could write but the spec refuses (floats, integers
    # beyond 2**53) the check above has refused.
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # a type JSON has no form for
        raise CanonicalJsonError(f"not a JSON value: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise CanonicalJsonError(f"{name} is not JSON")


def _integral_number(text: str) -> int | float:
    # The spec's canonical JSON example turns 1e10 into 10000000000: a number
    # written with an exponent or ".0" that is a whole number is that integer.
    value = float(text)
    if math.isinf(value):  # 1e400: JSON has no infinity, whatever the float parser says
        raise CanonicalJsonError(f"number out of range: {text[:40]}")
    if value.is_integer() and MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return int(value)
    return value


def parse_json(data: bytes | str, *, parse_int: Callable[[str], Any] | None = None) -> Any:
    """Parse JSON text strictly: no NaN/Infinity; ``ValueError`` on anything bad.

    ``parse_int`` may bound integers (it raises ``CanonicalJsonError`` to refuse one).
    """
    try:
        return json.loads(data, parse_constant=_refuse_constant, parse_float=_integral_number,
                          parse_int=parse_int)
    except RecursionError:
        raise CanonicalJsonError("JSON nested too deeply") from None

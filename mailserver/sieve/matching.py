"""Sieve comparators and match types (RFC 5228 2.7, RFC 4790 9, RFC 5231).

``match(values, keys, ...)`` answers whether any value matches any key and,
for ``:matches``, returns the wildcard captures for the variables extension
(RFC 5229 3.2: ``${0}`` the whole value, ``${1}``... each wildcard).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_DIGITS = re.compile(r"[0-9]*")


def ascii_casemap(text: str) -> str:
    """RFC 4790 9.2: only ASCII letters fold."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _numeric(text: str) -> float:
    """RFC 4790 9.1: the leading digits; none is positive infinity."""
    digits = _DIGITS.match(text)
    head = digits.group() if digits else ""
    return float(int(head)) if head else float("inf")


@dataclass(frozen=True)
class MatchResult:
    matched: bool
    captures: tuple[str, ...] = ()


_STAR = "\x00*"  # a token no single character of a value equals


@lru_cache(maxsize=512)
def _glob(key: str, fold: bool) -> tuple[str | None, ...]:
    """RFC 5228 2.7.1 ``:matches`` key as tokens: a character, ``*`` or ``?``
    (``None`` stands for ``?``); ``\\`` quotes the next character."""
    tokens: list[str | None] = []
    i = 0
    while i < len(key):
        c = key[i]
        if c == "\\" and i + 1 < len(key):
            i += 1
            c = key[i]
            tokens.append(ascii_casemap(c) if fold else c)
        elif c == "*":
            tokens.append(_STAR)
        elif c == "?":
            tokens.append(None)
        else:
            tokens.append(ascii_casemap(c) if fold else c)
        i += 1
    return tuple(tokens)


def _glob_match(tokens: tuple[str | None, ...], text: str) -> list[tuple[int, int]] | None:
    """The wildcard spans of a match, or None; linear backtracking over the
    last ``*`` only (no regular expression: a key of many ``*`` must not take
    exponential time)."""
    spans: dict[int, tuple[int, int]] = {}
    p = t = 0
    star_p, star_t = -1, 0
    n = len(tokens)
    while t < len(text):
        token = tokens[p] if p < n else ""
        if p < n and token is None:
            spans[p] = (t, t + 1)
            p += 1
            t += 1
        elif p < n and token == _STAR:
            star_p, star_t = p, t
            spans[p] = (t, t)
            p += 1
        elif p < n and token == text[t]:
            p += 1
            t += 1
        elif star_p >= 0:
            star_t += 1
            spans[star_p] = (spans[star_p][0], star_t)
            p, t = star_p + 1, star_t
        else:
            return None
    while p < n and tokens[p] == _STAR:
        spans[p] = (t, t)
        p += 1
    if p != n:
        return None
    return [spans[i] for i in range(n) if tokens[i] is None or tokens[i] == _STAR]


def _relation(op: str, left: float | str, right: float | str) -> bool:
    if op == "eq":
        return left == right
    if op == "ne":
        return left != right
    if isinstance(left, str) != isinstance(right, str):
        return False
    if op == "gt":
        return left > right  # type: ignore[operator]
    if op == "ge":
        return left >= right  # type: ignore[operator]
    if op == "lt":
        return left < right  # type: ignore[operator]
    return left <= right  # type: ignore[operator]


def match(values: Sequence[str], keys: Sequence[str], *, match_type: str = "is",
          relation: str = "eq", comparator: str = "i;ascii-casemap") -> MatchResult:
    """Whether any of ``values`` matches any of ``keys`` (RFC 5228 2.7.1)."""
    comparator = comparator.lower()
    fold = comparator == "i;ascii-casemap"
    numeric = comparator == "i;ascii-numeric"
    if match_type == "count":
        count = float(sum(1 for v in values if v != ""))
        return MatchResult(any(_relation(relation, count, _numeric(k)) for k in keys))
    for value in values:
        folded = ascii_casemap(value) if fold else value
        for key in keys:
            folded_key = ascii_casemap(key) if fold else key
            if match_type == "is":
                ok = (_numeric(value) == _numeric(key)) if numeric else folded == folded_key
                if ok:
                    return MatchResult(True)
            elif match_type == "contains":
                if not numeric and folded_key in folded:
                    return MatchResult(True)
            elif match_type == "matches":
                if numeric:
                    continue
                found = _glob_match(_glob(key, fold), folded)
                if found is not None:
                    # Captures from the original value, not the folded one.
                    captures = tuple(value[start:end] for start, end in found)
                    return MatchResult(True, (value, *captures))
            elif match_type == "value":
                left: float | str = _numeric(value) if numeric else folded
                right: float | str = _numeric(key) if numeric else folded_key
                if _relation(relation, left, right):
                    return MatchResult(True)
    return MatchResult(False)

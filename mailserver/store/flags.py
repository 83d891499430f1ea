"""Message flags as stored: a system-flag bit mask plus keywords (RFC 9051 2.3.2).

Flag names compare case-insensitively (RFC 3501 2.3.2, kept by RFC 9051) but a
keyword keeps the spelling the client first used.  ``\\Recent`` is not a flag
here: IMAP4rev2 removed it; for IMAP4rev1 sessions the mailbox keeps the first
UID no session has claimed yet (``mailboxes.recent_uid``, ``claim_recent``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from mailserver.store.model import FlagMode, InvalidFlag

SYSTEM_FLAGS: dict[str, int] = {
    "\\Seen": 1,
    "\\Answered": 2,
    "\\Flagged": 4,
    "\\Deleted": 8,
    "\\Draft": 16,
}
SEEN = SYSTEM_FLAGS["\\Seen"]
DELETED = SYSTEM_FLAGS["\\Deleted"]
_BY_LOWER = {name.lower(): (name, bit) for name, bit in SYSTEM_FLAGS.items()}


def encode(flags: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """Flags as given by a client -> (bits, keywords in first spelling, de-duplicated)."""
    bits = 0
    keywords: dict[str, str] = {}
    for flag in flags:
        if flag.startswith("\\"):
            lower = flag.lower()
            if lower == "\\recent":
                continue  # session state, never stored (RFC 9051 2.3.2)
            try:
                bits |= _BY_LOWER[lower][1]
            except KeyError:
                raise InvalidFlag(f"unknown system flag {flag!r}") from None
        elif not flag or any(c in flag for c in ' ()]{%*"\\') or not flag.isprintable():
            raise InvalidFlag(f"invalid keyword {flag!r}")
        else:
            keywords.setdefault(flag.lower(), flag)
    return bits, tuple(keywords.values())


def keywords_text(keywords: Iterable[str]) -> str:
    return " ".join(keywords)


@lru_cache(maxsize=4096)
def decode(bits: int, keywords: str) -> frozenset[str]:
    """Stored columns -> the flag set IMAP reports (cached: few distinct combinations)."""
    names = [name for name, bit in SYSTEM_FLAGS.items() if bits & bit]
    if keywords:
        names.extend(keywords.split(" "))
    return frozenset(names)


def apply(mode: FlagMode, bits: int, keywords: str,
          given_bits: int, given_keywords: tuple[str, ...]) -> tuple[int, str]:
    """The stored flags after STORE ``mode`` (RFC 9051 6.4.6)."""
    if mode is FlagMode.REPLACE:
        return given_bits, keywords_text(given_keywords)
    current = keywords.split(" ") if keywords else []
    if mode is FlagMode.ADD:
        present = {k.lower() for k in current}
        added = [k for k in given_keywords if k.lower() not in present]
        return bits | given_bits, keywords_text(current + added)
    removed = {k.lower() for k in given_keywords}
    return bits & ~given_bits, keywords_text(k for k in current if k.lower() not in removed)


def same(bits_a: int, keywords_a: str, bits_b: int, keywords_b: str) -> bool:
    """Whether two stored flag states are equal as IMAP sees them (case-insensitive)."""
    if bits_a != bits_b:
        return False
    return ({k.lower() for k in keywords_a.split(" ") if k}
            == {k.lower() for k in keywords_b.split(" ") if k})

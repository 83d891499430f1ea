"""SEARCH keys (RFC 9051 6.4.4, RFC 3501 6.4.4, MODSEQ of RFC 7162 3.1.5)
as a typed tree, with their parsing and request formatting."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from mailserver.imap.wire.errors import ParseError
from mailserver.imap.wire.reader import Reader
from mailserver.imap.wire.sequence import SequenceSet, parse_sequence_set

FLAG_KEYS = frozenset({
    "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN",
    "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN",
})
TEXT_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
DATE_KEYS = frozenset({"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"})
SIZE_KEYS = frozenset({"LARGER", "SMALLER"})
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SUPPORTED_CHARSETS = ("US-ASCII", "UTF-8")


@dataclass(frozen=True)
class SearchFlagKey:
    """ALL, SEEN, UNSEEN, NEW, RECENT ...: keys without arguments."""

    name: str


@dataclass(frozen=True)
class SearchKeyword:
    """KEYWORD flag / UNKEYWORD flag (``negated``)."""

    keyword: str
    negated: bool = False


@dataclass(frozen=True)
class SearchText:
    """BCC BODY CC FROM SUBJECT TEXT TO with a string (substring match)."""

    name: str
    value: str


@dataclass(frozen=True)
class SearchHeader:
    """HEADER field-name string."""

    field: str
    value: str


@dataclass(frozen=True)
class SearchDate:
    """BEFORE ON SINCE (internal date) and SENT* (Date: header)."""

    name: str
    date: datetime.date


@dataclass(frozen=True)
class SearchSize:
    """LARGER / SMALLER n (RFC822.SIZE)."""

    name: str
    size: int


@dataclass(frozen=True)
class SearchSequence:
    """A bare sequence set (message numbers) or ``UID`` set (``uid``)."""

    sequence_set: SequenceSet
    uid: bool = False


@dataclass(frozen=True)
class SearchModSeq:
    """MODSEQ [entry-name entry-type] modseq (RFC 7162 3.1.5)."""

    modseq: int
    entry: tuple[str, str] | None = None


@dataclass(frozen=True)
class SearchNot:
    key: SearchKey


@dataclass(frozen=True)
class SearchOr:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True)
class SearchAnd:
    """A parenthesised list, and the top-level list of keys (all must match)."""

    keys: tuple[SearchKey, ...]


SearchKey = (SearchFlagKey | SearchKeyword | SearchText | SearchHeader | SearchDate
             | SearchSize | SearchSequence | SearchModSeq | SearchNot | SearchOr | SearchAnd)


def any_leaf(key: SearchKey, test: Callable[[SearchKey], bool]) -> bool:
    """Whether ``test`` holds for some leaf of the key tree (NOT/OR/AND looked through)."""
    match key:
        case SearchNot(inner):
            return any_leaf(inner, test)
        case SearchOr(left, right):
            return any_leaf(left, test) or any_leaf(right, test)
        case SearchAnd(keys):
            return any(any_leaf(k, test) for k in keys)
    return test(key)


def all_leaves(key: SearchKey, test: Callable[[SearchKey], bool]) -> bool:
    """Whether ``test`` holds for every leaf of the key tree."""
    return not any_leaf(key, lambda leaf: not test(leaf))

# Nesting bound: NOT NOT NOT ... must not exhaust the Python stack.
MAX_DEPTH = 50


class SearchKeyParser:
    """Parses ``search-key``s from a reader, decoding strings with ``charset``."""

    def __init__(self, reader: Reader, charset: str) -> None:
        self._reader = reader
        self._charset = charset

    def keys(self) -> SearchKey:
        """``1*(SP search-key)`` after the program's preamble, to the end."""
        keys = [self.key(0)]
        while not self._reader.at_end():
            self._reader.space()
            keys.append(self.key(0))
        return keys[0] if len(keys) == 1 else SearchAnd(tuple(keys))

    def _string(self) -> str:
        raw = self._reader.astring()
        try:
            return raw.decode(self._charset)
        except UnicodeDecodeError as error:
            raise ParseError(f"search string is not {self._charset}") from error

    def key(self, depth: int) -> SearchKey:
        if depth > MAX_DEPTH:
            raise ParseError("search key nested too deeply")
        reader = self._reader
        if reader.peek_is(b"("):
            keys = reader.parenthesized(lambda: self.key(depth + 1))
            if not keys:
                raise ParseError("empty search key list")
            return SearchAnd(tuple(keys))
        peek = reader.peek()
        if peek is not None and (0x30 <= peek <= 0x39 or peek in b"*$"):
            return SearchSequence(parse_sequence_set(reader.sequence_token()))
        name = reader.keyword()
        if name in FLAG_KEYS:
            return SearchFlagKey(name)
        reader.space()
        if name in TEXT_KEYS:
            return SearchText(name, self._string())
        if name in ("KEYWORD", "UNKEYWORD"):
            return SearchKeyword(_flag_keyword(reader), negated=name == "UNKEYWORD")
        if name == "HEADER":
            field = self._string()
            reader.space()
            return SearchHeader(field, self._string())
        if name in DATE_KEYS:
            return SearchDate(name, parse_search_date(reader))
        if name in SIZE_KEYS:
            return SearchSize(name, reader.number())
        if name == "UID":
            return SearchSequence(parse_sequence_set(reader.sequence_token()), uid=True)
        if name == "NOT":
            return SearchNot(self.key(depth + 1))
        if name == "OR":
            left = self.key(depth + 1)
            reader.space()
            return SearchOr(left, self.key(depth + 1))
        if name == "MODSEQ":
            return self._modseq()
        raise ParseError(f"unknown search key {name[:40]}")

    def _modseq(self) -> SearchModSeq:
        reader = self._reader
        entry = None
        if reader.peek_is(b'"'):
            entry_name = reader.quoted().decode("ascii", "replace")
            reader.space()
            entry_type = reader.keyword().lower()
            if entry_type not in ("priv", "shared", "all"):
                raise ParseError("invalid MODSEQ entry type")
            reader.space()
            entry = (entry_name, entry_type)
        return SearchModSeq(reader.number(), entry)


def _flag_keyword(reader: Reader) -> str:
    return reader.atom().decode("ascii")


def parse_search_date(reader: Reader) -> datetime.date:
    """``date`` = date-text / DQUOTE date-text DQUOTE; ``d-Mon-yyyy``."""
    raw = reader.quoted() if reader.peek_is(b'"') else reader.atom()
    try:
        day, month, year = raw.decode("ascii").split("-")
        month_number = [m.upper() for m in MONTHS].index(month.upper()) + 1
        if not (1 <= len(day) <= 2 and len(year) == 4 and day.isdigit() and year.isdigit()):
            raise ValueError(raw)
        return datetime.date(int(year), month_number, int(day))
    except (ValueError, UnicodeDecodeError) as error:
        raise ParseError("invalid date") from error


def format_date(date: datetime.date) -> str:
    return f"{date.day}-{MONTHS[date.month - 1]}-{date.year:04d}"


def format_search_key(key: SearchKey, quote: Callable[[str], str]) -> str:
    """Request form of a key; ``quote`` renders a string argument."""
    match key:
        case SearchFlagKey(name):
            return name
        case SearchKeyword(keyword, negated):
            return f"{'UNKEYWORD' if negated else 'KEYWORD'} {keyword}"
        case SearchText(name, value):
            return f"{name} {quote(value)}"
        case SearchHeader(field, value):
            return f"HEADER {quote(field)} {quote(value)}"
        case SearchDate(name, date):
            return f"{name} {format_date(date)}"
        case SearchSize(name, size):
            return f"{name} {size}"
        case SearchSequence(sequence_set, uid):
            return f"UID {sequence_set}" if uid else str(sequence_set)
        case SearchModSeq(modseq, entry):
            if entry is None:
                return f"MODSEQ {modseq}"
            # entry-flag-name is always a quoted string (RFC 7162 7).
            name = entry[0].replace("\\", "\\\\").replace('"', '\\"')
            return f'MODSEQ "{name}" {entry[1]} {modseq}'
        case SearchNot(inner):
            return "NOT " + format_search_key(inner, quote)
        case SearchOr(left, right):
            return f"OR {format_search_key(left, quote)} {format_search_key(right, quote)}"
        case SearchAnd(keys):
            return "(" + " ".join(format_search_key(k, quote) for k in keys) + ")"
    raise TypeError(f"not a search key: {key!r}")

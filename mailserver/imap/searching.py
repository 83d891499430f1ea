"""SEARCH evaluation (RFC 3501 6.4.4, RFC 9051 6.4.4, MODSEQ RFC 7162
3.1.5, ``$`` RFC 5182) against one message, and the ESEARCH result options
(RFC 4731 3.1, RFC 9051 6.4.4, SAVE RFC 5182 2.1). Pure: no I/O.

Semantics chosen where the RFCs leave room:

- Strings match as case-insensitive (Unicode casefold) substrings of
  *decoded* text: header values with RFC 2047 encoded-words decoded (raw
  8-bit header bytes read as UTF-8, RFC 6532, else Latin-1); body text is
  every text/* leaf part with its transfer encoding removed and decoded
  with its charset, plus the header of each attached message/rfc822.
  Non-text parts (images, PDFs, ...) are not searched.
- BEFORE / ON / SINCE compare the INTERNALDATE's calendar date in UTC.
  RFC 3501 compares dates "disregarding time and timezone" and leaves the
  zone to the server; fixing UTC keeps results independent of the host.
- SENTBEFORE / SENTON / SENTSINCE use the date written in the Date: header
  (its own zone). A missing or unparseable Date: matches none of them.
- ``\\Recent`` is not a stored flag (IMAP4rev2 dropped it): an IMAP4rev1
  session knows which messages it claimed as recent (RFC 3501 2.3.2) and
  says so through ``SearchContext.recent``; without it RECENT and NEW match
  nothing and OLD matches everything (NEW is RECENT UNSEEN, RFC 3501 6.4.4).
- MODSEQ ignores the entry name/type: we keep one mod-sequence per message
  (RFC 7162 3.1.5 allows this).
- ``$`` (RFC 5182) matches messages whose UID is in the saved result, both
  as a sequence set and as a UID set.
"""

from __future__ import annotations

import binascii
import codecs
import datetime
import email.utils
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from mailserver.imap.fetching import MessageRecord, ParsedMessage, ParsedMessageCache
from mailserver.imap.fetching import parsed_message as _parsed_message
from mailserver.imap.mime import UnknownTransferEncoding
from mailserver.imap.mime.addresses import parse_address_list
from mailserver.imap.mime.entity import Entity, header_fields
from mailserver.imap.mime.sections import decode_transfer_encoding
from mailserver.imap.wire.responses import ESearchData
from mailserver.imap.wire.search import (
    SearchAnd,
    SearchDate,
    SearchFlagKey,
    SearchHeader,
    SearchKey,
    SearchKeyword,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSequence,
    SearchSize,
    SearchText,
    any_leaf,
)
from mailserver.imap.wire.sequence import SequenceSet

_FLAG_OF = {"ANSWERED": "\\answered", "DELETED": "\\deleted", "DRAFT": "\\draft",
            "FLAGGED": "\\flagged", "SEEN": "\\seen"}
_TEXT_HEADERS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
_SENT_KEYS = frozenset({"SENTBEFORE", "SENTON", "SENTSINCE"})
_ADDRESS_KEYS = frozenset({"BCC", "CC", "FROM", "TO"})


@dataclass
class SearchContext:
    """One message as SEARCH sees it.

    ``max_seq`` / ``max_uid`` give ``*`` its value (RFC 9051 9);
    ``saved_uids`` is the SEARCHRES result for ``$``; ``load_body`` returns
    the raw message and is called at most once, only for keys that need
    it (see ``needs_body``); ``cache`` lets the session share parsed
    messages with FETCH.
    """

    record: MessageRecord
    max_seq: int
    max_uid: int
    saved_uids: Collection[int] = frozenset()
    load_body: Callable[[], bytes] | None = None
    recent: bool = False
    cache: ParsedMessageCache | None = None
    _message: ParsedMessage | None = field(default=None, init=False, repr=False)

    def message(self) -> ParsedMessage:
        if self._message is None:
            if self.load_body is None:
                raise ValueError("this search key needs the message body")
            self._message = _parsed_message(self.load_body(), self.record.blob_id, self.cache)
        return self._message


def needs_body(key: SearchKey) -> bool:
    """Whether evaluating ``key`` may read the message: text keys, HEADER
    and SENT* (the Date: header). Flag, size, UID, sequence, MODSEQ and
    INTERNALDATE keys never do."""
    return any_leaf(key, _reads_message)


def _reads_message(leaf: SearchKey) -> bool:
    match leaf:
        case SearchText() | SearchHeader():
            return True
        case SearchDate(name, _):
            return name in _SENT_KEYS
    return False


def matches(key: SearchKey, ctx: SearchContext) -> bool:
    """Whether the message of ``ctx`` satisfies ``key`` (RFC 9051 6.4.4).
    Keys that need no body are tried first, so a failing flag test spares
    loading the blob."""
    match key:
        case SearchFlagKey(name):
            return _flag_key(name, ctx)
        case SearchKeyword(keyword, negated):
            return _has_flag(ctx.record, keyword.lower()) != negated
        case SearchSize(name, size):
            return ctx.record.size > size if name == "LARGER" else ctx.record.size < size
        case SearchSequence(sequence_set, uid):
            return _in_set(sequence_set, ctx, uid)
        case SearchModSeq(modseq, _):
            return ctx.record.modseq >= modseq
        case SearchDate(name, date):
            return _date_key(name, date, ctx)
        case SearchText(name, value):
            return _text_key(name, value, ctx.message())
        case SearchHeader(name, value):
            return _contains(_header_values(ctx.message(), name.strip().lower()), value)
        case SearchNot(inner):
            return not matches(inner, ctx)
        case SearchOr(left, right):
            first, second = (right, left) if needs_body(left) else (left, right)
            return matches(first, ctx) or matches(second, ctx)
        case SearchAnd(keys):
            ordered = sorted(keys, key=needs_body)  # stable: cheap keys first
            return all(matches(k, ctx) for k in ordered)
    raise TypeError(f"not a search key: {key!r}")


# --- flags, sets, dates -----------------------------------------------------

def _has_flag(record: MessageRecord, lower: str) -> bool:
    # Flags compare case-insensitively (RFC 3501 2.3.2).
    return any(flag.lower() == lower for flag in record.flags)


def _flag_key(name: str, ctx: SearchContext) -> bool:
    recent = ctx.recent or _has_flag(ctx.record, "\\recent")
    if name == "ALL":
        return True
    if name == "RECENT":
        return recent
    if name == "OLD":
        return not recent
    if name == "NEW":
        return recent and not _has_flag(ctx.record, "\\seen")
    if name.startswith("UN"):
        return not _has_flag(ctx.record, _FLAG_OF[name[2:]])
    return _has_flag(ctx.record, _FLAG_OF[name])


def _in_set(sequence_set: SequenceSet, ctx: SearchContext, uid: bool) -> bool:
    if sequence_set.saved:
        return ctx.record.uid in ctx.saved_uids
    if uid:
        return sequence_set.contains(ctx.record.uid, max(ctx.max_uid, ctx.record.uid))
    return sequence_set.contains(ctx.record.seq, max(ctx.max_seq, ctx.record.seq))


def _date_key(name: str, date: datetime.date, ctx: SearchContext) -> bool:
    if name in _SENT_KEYS:
        found = ctx.message().memo("sent-date", lambda: _sent_date(ctx.message()))
        if found is None:
            return False
    else:
        internal = ctx.record.internal_date
        if internal.tzinfo is None:
            internal = internal.replace(tzinfo=datetime.UTC)
        found = internal.astimezone(datetime.UTC).date()
    if name.endswith("BEFORE"):
        return found < date
    if name.endswith("ON"):
        return found == date
    return found >= date  # SINCE / SENTSINCE


def _sent_date(message: ParsedMessage) -> datetime.date | None:
    values = _header_values(message, "date")
    if not values:
        return None
    try:
        # The date as written, in the sender's zone (RFC 3501 6.4.4).
        return email.utils.parsedate_to_datetime(values[0].strip()).date()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# --- text ---------------------------------------------------------------------

def _contains(haystacks: Iterable[str], needle: str) -> bool:
    folded = needle.casefold()
    return any(folded in haystack.casefold() for haystack in haystacks)


def _text_key(name: str, value: str, message: ParsedMessage) -> bool:
    if name in _ADDRESS_KEYS:
        field = _TEXT_HEADERS[name]
        return _contains(message.memo(("search-addresses", field),
                                      lambda: _address_texts(message, field)), value)
    if name in _TEXT_HEADERS:
        return _contains(_header_values(message, _TEXT_HEADERS[name]), value)
    body = message.memo("search-body", lambda: _body_text(message.entity))
    if name == "BODY":
        return _contains(body, value)
    headers = message.memo("search-header", lambda: _header_text(message.header))
    return _contains((headers, *body), value)  # TEXT: header or body


def _address_texts(message: ParsedMessage, lower_name: str) -> tuple[str, ...]:
    """What FROM / TO / CC / BCC match (RFC 3501 6.4.4 "contains the
    specified string in the envelope structure's ... field"): each field's
    decoded text, and each address as ``Name <mailbox@host>`` with the name
    decoded: the display name of a quoted or a comment form
    (``user@host (Name)``) and the address written without quotes or
    comments both match, as they do with Dovecot."""
    out = list(_header_values(message, lower_name))
    for field_name, text in header_fields(message.header):
        if field_name.decode("latin-1") != lower_name or b":" not in text:
            continue
        raw = text.split(b":", 1)[1].replace(b"\r", b"").replace(b"\n", b"")
        for address in parse_address_list(raw.strip(b" \t") or None) or ():
            if address.mailbox is None or address.host is None:
                continue  # group markers
            spec = _bytes_text(address.mailbox + b"@" + address.host)
            name = decode_header_value(address.name) if address.name else ""
            out.append(f"{name} <{spec}>" if name else spec)
    return tuple(out)


def _header_values(message: ParsedMessage, lower_name: str) -> tuple[str, ...]:
    fields = message.memo("search-fields", lambda: _decoded_fields(message.header))
    return tuple(value for name, value in fields if name == lower_name)


def _decoded_fields(header: bytes) -> tuple[tuple[str, str], ...]:
    out = []
    for name, text in header_fields(header):
        if b":" not in text:
            continue
        raw = text.split(b":", 1)[1]
        out.append((name.decode("latin-1"), decode_header_value(raw)))
    return tuple(out)


def _header_text(header: bytes) -> str:
    return "\n".join(f"{name}: {value}" for name, value in _decoded_fields(header))


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")


def decode_header_value(raw: bytes) -> str:
    """A raw header value unfolded, with RFC 2047 encoded-words decoded.
    Adjacent encoded-words join without the whitespace between them (RFC
    2047 6.2), and words of one charset are decoded together so a
    character split across words survives. Never raises."""
    text = _bytes_text(raw)
    text = re.sub(r"\r?\n", "", text).strip()
    out: list[str] = []
    pending: tuple[str, bytes] | None = None  # (charset, octets) of joined words
    pos = 0
    for found in _ENCODED_WORD.finditer(text):
        between = text[pos:found.start()]
        octets = _word_octets(found.group(2), found.group(3))
        charset = found.group(1).split("*", 1)[0].lower()
        if octets is None:  # malformed: keep it as it was written
            out.append(_flush(pending) + between + found.group(0))
            pending = None
        elif pending is not None and not between.strip():
            if pending[0] == charset:
                pending = (charset, pending[1] + octets)
            else:
                out.append(_flush(pending))
                pending = (charset, octets)
        else:
            out.append(_flush(pending) + between)
            pending = (charset, octets)
        pos = found.end()
    out.append(_flush(pending) + text[pos:])
    return "".join(out)


def _word_octets(encoding: str, data: str) -> bytes | None:
    try:
        raw = data.encode("ascii")
        if encoding in "Qq":
            return binascii.a2b_qp(raw, header=True)
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None


def _flush(pending: tuple[str, bytes] | None) -> str:
    return "" if pending is None else _decode(pending[1], pending[0])


def _decode(octets: bytes, charset: str | None) -> str:
    """Octets in ``charset``; unknown or missing charsets fall back to
    UTF-8, then Latin-1 (which accepts every octet)."""
    if charset:
        try:
            codecs.lookup(charset)
            return octets.decode(charset, "replace")
        except (LookupError, ValueError):
            pass
    return _bytes_text(octets)


def _bytes_text(octets: bytes) -> str:
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError:
        return octets.decode("latin-1")


def _body_text(entity: Entity, depth: int = 0) -> tuple[str, ...]:
    """Decoded text of every text/* leaf and each attached message's header."""
    if entity.is_multipart:
        return tuple(text for child in entity.children for text in _body_text(child, depth + 1))
    if entity.is_rfc822 and entity.encapsulated is not None:
        inner = entity.encapsulated
        return (_header_text(inner.header), *_body_text(inner, depth + 1))
    if entity.content_type[0] != "text":
        return ()
    try:
        octets = decode_transfer_encoding(entity)
    except (UnknownTransferEncoding, ValueError):
        octets = entity.body  # search what was written rather than nothing
    try:
        charset = entity.headers.get_content_charset()
    except (LookupError, ValueError, TypeError):
        charset = None
    return (_decode(octets, charset),)


# --- ESEARCH ------------------------------------------------------------------

@dataclass(frozen=True)
class EsearchOutcome:
    """What to send and what to save for one SEARCH with RETURN.

    ``response`` is None when SAVE is the only option (RFC 5182 2.1: no
    ESEARCH then). ``saved`` is None without SAVE, else the numbers to
    remember for ``$``, in the numbering of ``numbers`` (the session maps
    sequence numbers to UIDs: RFC 5182 saves UIDs).
    """

    response: ESearchData | None
    saved: tuple[int, ...] | None = None


def esearch_result(numbers: Iterable[int], return_options: Iterable[str], *,
                   tag: str | None = None, uid: bool = False,
                   modseq: int | None = None) -> EsearchOutcome:
    """RETURN (MIN MAX ALL COUNT SAVE) of RFC 4731 3.1 / RFC 9051 6.4.4.

    ``RETURN ()`` means ALL. MIN, MAX and ALL are left out when nothing
    matched; COUNT is always given. ALL is a compressed sequence set.
    SAVE with only MIN and/or MAX saves just those (RFC 5182 2.1).
    """
    found = sorted(set(numbers))
    options = {option.upper() for option in return_options}
    wanted = options - {"SAVE"}
    if not options:
        wanted = {"ALL"}
    unknown = wanted - {"MIN", "MAX", "ALL", "COUNT"}
    if unknown:
        raise ValueError(f"unknown RETURN options {sorted(unknown)}")
    low = found[0] if found else None
    high = found[-1] if found else None
    saved: tuple[int, ...] | None = None
    if "SAVE" in options:
        if wanted and wanted <= {"MIN", "MAX"}:
            chosen = {low if "MIN" in wanted else None, high if "MAX" in wanted else None}
            saved = tuple(sorted(n for n in chosen if n is not None))
        else:
            saved = tuple(found)
    if not wanted:
        return EsearchOutcome(None, saved)
    response = ESearchData(
        tag=tag,
        uid=uid,
        min=low if "MIN" in wanted else None,
        max=high if "MAX" in wanted else None,
        all=SequenceSet.from_numbers(found) if "ALL" in wanted and found else None,
        count=len(found) if "COUNT" in wanted else None,
        modseq=modseq if found else None,
    )
    return EsearchOutcome(response, saved)

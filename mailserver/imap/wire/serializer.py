"""Typed responses -> bytes (RFC 9051 7 and 9 formal syntax, RFC 3501 7).

Strings are sent quoted when they are short printable text, otherwise as
literals (8-bit octets, CR, LF; RFC 9051 4.3); with UTF8=ACCEPT enabled,
UTF-8 text may be quoted (RFC 6855 3). Mailbox names are modified UTF-7
unless UTF8=ACCEPT is enabled (RFC 3501 5.1.3, RFC 6855 3).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from mailserver.imap.mime.types import Address, BodyStructure, Envelope, Extension, SinglePart
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.mutf7 import encode_mutf7
from mailserver.imap.wire.search import MONTHS

MAX_QUOTED = 1024
CRLF = b"\r\n"


def nstring(value: bytes | str | None, *, utf8: bool = False) -> bytes:
    """``nstring``: NIL, a quoted string, or a literal."""
    if value is None:
        return b"NIL"
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) <= MAX_QUOTED and _quotable(data, utf8):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


_PRINTABLE = bytes(range(0x20, 0x7F))
_PRINTABLE_OR_8BIT = _PRINTABLE + bytes(range(0x80, 0x100))


def _quotable(data: bytes, utf8: bool) -> bool:
    # bytes.translate deletes the allowed octets at C speed: nothing left = all allowed.
    if not data.translate(None, _PRINTABLE):
        return True
    if not utf8 or data.translate(None, _PRINTABLE_OR_8BIT):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def mailbox_name(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name, quoted or literal (RFC 9051 5.1)."""
    return nstring(name.encode("utf-8") if utf8 else encode_mutf7(name), utf8=utf8)


def _text(text: str) -> bytes:
    # resp-text: no line breaks may leak into the protocol stream.
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")


def _paren(items: list[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def _atoms(values: tuple[str, ...]) -> list[bytes]:
    return [value.encode("utf-8") for value in values]


def _code(code: r.ResponseCode) -> bytes:
    match code:
        case r.Code(name, None):
            body = name.encode("ascii")
        case r.Code(name, argument):
            body = name.encode("ascii") + b" " + _text(argument or "").replace(b"]", b" ")
        case r.NumberCode(name, value):
            body = b"%s %d" % (name.encode("ascii"), value)
        case r.CapabilityCode(capabilities):
            body = b" ".join([b"CAPABILITY", *_atoms(capabilities)])
        case r.PermanentFlagsCode(flags):
            body = b"PERMANENTFLAGS " + _paren(_atoms(flags))
        case r.AppendUidCode(uidvalidity, uids):
            body = b"APPENDUID %d %s" % (uidvalidity, bytes(uids))
        case r.CopyUidCode(uidvalidity, source, destination):
            body = b"COPYUID %d %s %s" % (uidvalidity, bytes(source), bytes(destination))
        case r.ModifiedCode(numbers):
            body = b"MODIFIED " + bytes(numbers)
        case _:
            raise TypeError(f"not a response code: {code!r}")
    return b"[" + body + b"] "


def format_internal_date(date: datetime.datetime) -> bytes:
    """``date-time`` (RFC 9051 9): ``"dd-Mon-yyyy hh:mm:ss +zzzz"``."""
    if date.tzinfo is None:
        date = date.replace(tzinfo=datetime.UTC)
    offset = date.utcoffset() or datetime.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    text = (f'"{date.day:2d}-{MONTHS[date.month - 1]}-{date.year:04d} '
            f'{date.hour:02d}:{date.minute:02d}:{date.second:02d} '
            f'{sign}{minutes // 60:02d}{minutes % 60:02d}"')
    return text.encode("ascii")


def _addresses(addresses: tuple[Address, ...] | None) -> bytes:
    if addresses is None:
        return b"NIL"
    return _paren([_paren([nstring(a.name), nstring(a.adl), nstring(a.mailbox),
                           nstring(a.host)]) for a in addresses])


def envelope_bytes(envelope: Envelope) -> bytes:
    """``envelope`` (RFC 9051 7.5.2)."""
    return _paren([
        nstring(envelope.date), nstring(envelope.subject),
        _addresses(envelope.from_), _addresses(envelope.sender),
        _addresses(envelope.reply_to), _addresses(envelope.to),
        _addresses(envelope.cc), _addresses(envelope.bcc),
        nstring(envelope.in_reply_to), nstring(envelope.message_id),
    ])


def _params(params: tuple[tuple[bytes, bytes], ...]) -> bytes:
    if not params:
        return b"NIL"
    return _paren([item for pair in params for item in (nstring(pair[0]), nstring(pair[1]))])


def _extension(extension: Extension, single: bool) -> list[bytes]:
    disposition = (b"NIL" if extension.disposition is None else _paren(
        [nstring(extension.disposition.kind), _params(extension.disposition.params)]))
    language = (b"NIL" if extension.language is None
                else _paren([nstring(x) for x in extension.language]))
    head = [nstring(extension.md5)] if single else []
    return [*head, disposition, language, nstring(extension.location)]


def body_structure_bytes(structure: BodyStructure, extended: bool = True) -> bytes:
    """``body`` (RFC 9051 7.5.2 BODYSTRUCTURE; BODY without ``extended``)."""
    if isinstance(structure, SinglePart):
        fields = [nstring(structure.type), nstring(structure.subtype),
                  _params(structure.params), nstring(structure.id),
                  nstring(structure.description), nstring(structure.encoding),
                  b"%d" % structure.size]
        if structure.envelope is not None and structure.body is not None:
            fields += [envelope_bytes(structure.envelope),
                       body_structure_bytes(structure.body, extended)]
        if structure.lines is not None:
            fields.append(b"%d" % structure.lines)
        if extended and structure.extension is not None:
            fields += _extension(structure.extension, single=True)
        return _paren(fields)
    parts = b"".join(body_structure_bytes(part, extended) for part in structure.parts)
    fields = [parts, nstring(structure.subtype)]
    if extended and structure.extension is not None:
        fields += [_params(structure.params), *_extension(structure.extension, single=False)]
    return _paren(fields)


def _string_data(data: bytes | None, binary: bool = False) -> bytes:
    if data is not None and binary and b"\x00" in data:
        return b"~{%d}\r\n" % len(data) + data  # literal8 (RFC 3516 4.2)
    return nstring(data)


def _origin(origin: int | None) -> bytes:
    return b"" if origin is None else b"<%d>" % origin


@lru_cache(maxsize=1024)
def _flags_item(flags: tuple[str, ...]) -> bytes:
    # Few distinct flag lists exist; each is rendered once (unsolicited FETCH
    # FLAGS go to every session on the mailbox after each STORE).
    return b"FLAGS " + _paren(_atoms(flags))


def _flags(item: r.FlagsItem) -> bytes:
    if type(item.flags) is tuple:
        return _flags_item(item.flags)
    return b"FLAGS " + _paren(_atoms(item.flags))


def _uid(item: r.UidItem) -> bytes:
    return b"UID %d" % item.uid


def _internal_date(item: r.InternalDateItem) -> bytes:
    return b"INTERNALDATE " + _cached_internal_date(item.date)


@lru_cache(maxsize=4096)
def _cached_internal_date(date: datetime.datetime) -> bytes:
    # A message's INTERNALDATE never changes and clients fetch it again and again.
    return format_internal_date(date)


def _size(item: r.SizeItem) -> bytes:
    return b"RFC822.SIZE %d" % item.size


def _envelope(item: r.EnvelopeItem) -> bytes:
    return b"ENVELOPE " + (envelope_bytes(item.envelope) if item.encoded is None
                           else item.encoded)


def _body_structure(item: r.BodyStructureItem) -> bytes:
    name = b"BODYSTRUCTURE " if item.extended else b"BODY "
    if item.encoded is not None:
        return name + item.encoded
    return name + body_structure_bytes(item.structure, item.extended)


def _body_section(item: r.BodySectionItem) -> bytes:
    head = b"BODY[" + str(item.section).encode("ascii") + b"]" + _origin(item.origin)
    return head + b" " + _string_data(item.data)


def _binary(item: r.BinaryItem) -> bytes:
    head = b"BINARY[" + ".".join(map(str, item.part)).encode("ascii") + b"]"
    return head + _origin(item.origin) + b" " + _string_data(item.data, binary=True)


def _binary_size(item: r.BinarySizeItem) -> bytes:
    return b"BINARY.SIZE[" + ".".join(map(str, item.part)).encode("ascii") + b"] %d" % item.size


def _mod_seq(item: r.ModSeqItem) -> bytes:
    return b"MODSEQ (%d)" % item.modseq


def _rfc822(item: r.Rfc822Item) -> bytes:
    return item.name.encode("ascii") + b" " + _string_data(item.data)


# One dict lookup by exact type instead of a ``match`` that tries the item
# classes in turn (a FETCH of 200 messages renders 400-1,000 items).
_FETCH_ITEMS: dict[type, Callable[[Any], bytes]] = {
    r.FlagsItem: _flags, r.UidItem: _uid, r.InternalDateItem: _internal_date,
    r.SizeItem: _size, r.EnvelopeItem: _envelope, r.BodyStructureItem: _body_structure,
    r.BodySectionItem: _body_section, r.BinaryItem: _binary,
    r.BinarySizeItem: _binary_size, r.ModSeqItem: _mod_seq, r.Rfc822Item: _rfc822,
}


def _fetch_item(item: r.FetchValue) -> bytes:
    render = _FETCH_ITEMS.get(type(item))
    if render is None:
        raise TypeError(f"not a fetch item: {item!r}")
    return render(item)


def _namespaces(namespaces: r.Namespaces, utf8: bool) -> bytes:
    if namespaces is None:
        return b"NIL"
    return _paren([_paren([mailbox_name(prefix, utf8=utf8), nstring(delimiter)])
                   for prefix, delimiter in namespaces])


def _list(item: r.ListData, utf8: bool) -> bytes:
    name = b"LSUB" if item.lsub else b"LIST"
    out = b"* %s %s %s %s" % (name, _paren(_atoms(item.attributes)), nstring(item.delimiter),
                              mailbox_name(item.mailbox, utf8=utf8))
    extended = []
    if item.childinfo:
        extended.append(b'"CHILDINFO" ' + _paren([nstring(x) for x in item.childinfo]))
    if item.oldname is not None:
        extended.append(b'"OLDNAME" ' + _paren([mailbox_name(item.oldname, utf8=utf8)]))
    if extended:
        out += b" " + _paren(extended)
    return out


def _esearch(item: r.ESearchData) -> bytes:
    out = [b"* ESEARCH"]
    if item.tag is not None:
        out.append(b"(TAG " + nstring(item.tag) + b")")
    if item.uid:
        out.append(b"UID")
    for name, value in ((b"MIN", item.min), (b"MAX", item.max), (b"COUNT", item.count),
                        (b"MODSEQ", item.modseq)):
        if value is not None:
            out.append(b"%s %d" % (name, value))
    if item.all is not None:
        out.append(b"ALL " + bytes(item.all))
    return b" ".join(out)


def serialize_response(response: r.Response, *, utf8: bool = False) -> bytes:
    """One response, CRLF-terminated, ready for the socket."""
    if type(response) is r.FetchData:  # by far the most frequent
        return (b"* %d FETCH (" % response.number
                + b" ".join([_fetch_item(item) for item in response.items]) + b")" + CRLF)
    match response:
        case r.Tagged(tag, status, text, code):
            line = (tag.encode("ascii") + b" " + status.encode("ascii") + b" "
                    + (_code(code) if code else b"") + _text(text))
        case r.Untagged(status, text, code):
            line = b"* " + status.encode("ascii") + b" " + (_code(code) if code else b"") + _text(
                text)
        case r.Continuation(text, None):
            line = b"+ " + _text(text)
        case r.Continuation(_, challenge):
            line = b"+ " + base64.b64encode(challenge or b"")
        case r.CapabilityData(capabilities):
            line = b" ".join([b"* CAPABILITY", *_atoms(capabilities)])
        case r.EnabledData(capabilities):
            line = b" ".join([b"* ENABLED", *_atoms(capabilities)])
        case r.FlagsData(flags):
            line = b"* FLAGS " + _paren(_atoms(flags))
        case r.ExistsData(count):
            line = b"* %d EXISTS" % count
        case r.RecentData(count):
            line = b"* %d RECENT" % count
        case r.ExpungeData(number):
            line = b"* %d EXPUNGE" % number
        case r.VanishedData(uids, earlier):
            line = b"* VANISHED " + (b"(EARLIER) " if earlier else b"") + bytes(uids)
        case r.SearchData(numbers, modseq):
            line = b" ".join([b"* SEARCH", *(b"%d" % n for n in numbers)])
            if modseq is not None:
                line += b" (MODSEQ %d)" % modseq
        case r.ESearchData():
            line = _esearch(response)
        case r.ListData():
            line = _list(response, utf8)
        case r.StatusData(mailbox, items):
            line = b"* STATUS %s %s" % (mailbox_name(mailbox, utf8=utf8), _paren(
                [b"%s %d" % (name.encode("ascii"), value) for name, value in items]))
        case r.NamespaceData(personal, other, shared):
            line = b"* NAMESPACE " + b" ".join(
                _namespaces(ns, utf8) for ns in (personal, other, shared))
        case r.QuotaData(root, resources):
            line = b"* QUOTA %s %s" % (nstring(root, utf8=utf8), _paren(
                [b"%s %d %d" % (name.encode("ascii"), usage, limit)
                 for name, usage, limit in resources]))
        case r.QuotaRootData(mailbox, roots):
            line = b" ".join([b"* QUOTAROOT", mailbox_name(mailbox, utf8=utf8),
                              *(nstring(root, utf8=utf8) for root in roots)])
        case r.IdData(params):
            line = b"* ID " + (b"NIL" if params is None else _paren(
                [item for key, value in params for item in (nstring(key), nstring(value))]))
        case r.FetchData(number, items):
            line = b"* %d FETCH " % number + _paren([_fetch_item(item) for item in items])
        case _:
            raise TypeError(f"not a response: {response!r}")
    return line + CRLF

"""FETCH evaluation (RFC 3501 6.4.5 / 7.4.2, RFC 9051 6.4.5 / 7.5.2,
BINARY RFC 3516 4.2, MODSEQ RFC 7162 3.1.4.1): parsed FETCH attributes plus
one message -> typed FETCH response items, and whether ``\\Seen`` is set.

Pure: no I/O, no database. The session loads the message blob (only when
``needs_body`` says so), calls ``fetch_response_items`` and, when the result
``sets_seen``, stores ``\\Seen`` itself. Parsing a big message is CPU work:
the session runs this in a worker thread for large blobs; the parsed-message
cache is thread-safe for that reason.
"""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from mailserver.imap.mime import UnknownTransferEncoding
from mailserver.imap.mime.entity import Entity, parse_entity, split_header
from mailserver.imap.mime.envelope import envelope_of_header
from mailserver.imap.mime.sections import (
    decode_transfer_encoding,
    header_subset,
    resolve_part,
    section_of,
)
from mailserver.imap.mime.structure import structure_of
from mailserver.imap.mime.types import BodyStructure, Envelope
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.fetch_items import (
    MACROS,
    FetchAttribute,
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchItem,
    Section,
)

SEEN = "\\Seen"
# Items answered from the message record alone (no blob needed).
_RECORD_ITEMS = frozenset({"FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"})
# RFC 3501 6.4.5: these imply \Seen; RFC822.HEADER and the .PEEK forms do not.
_SEEN_ITEMS = frozenset({"RFC822", "RFC822.TEXT"})


@dataclass(frozen=True)
class MessageRecord:
    """What FETCH and SEARCH know of a message without its body.

    ``internal_date`` is timezone-aware (RFC 9051 2.3.3). ``blob_id`` keys
    the parsed-message cache; without it nothing is cached.
    """

    seq: int
    uid: int
    flags: frozenset[str]
    internal_date: datetime.datetime
    size: int
    modseq: int
    blob_id: str | None = None


class UnknownCte(UnknownTransferEncoding):
    """BINARY[part] of a part whose Content-Transfer-Encoding cannot be
    undone: the session answers ``NO [UNKNOWN-CTE]`` (RFC 3516 4.3)."""

    def __init__(self, part: tuple[int, ...], encoding: str) -> None:
        super().__init__(encoding)
        self.part = part
        self.encoding = encoding


class UnsupportedFetchItem(Exception):
    """A parsed attribute we have no response for (EMAILID, THREADID,
    SAVEDATE: RFC 8474 / RFC 8514 are not advertised): the session answers
    BAD."""


class ParsedMessage:
    """One message's bytes with its MIME views computed on first use, so a
    FETCH of many items (or a SEARCH of many text keys) parses once."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._lock = threading.Lock()
        self._memo: dict[Any, Any] = {}

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """A derived value, computed once per parsed message (also used by
        ``mailserver.imap.searching`` for decoded search text)."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        value = compute()  # outside the lock: parsing may take a while
        with self._lock:
            return self._memo.setdefault(key, value)

    @property
    def header(self) -> bytes:
        """The header with its terminating blank line (RFC822.HEADER)."""
        return self.memo("split", lambda: split_header(self.raw))[0]

    @property
    def text(self) -> bytes:
        """The body after the header (RFC822.TEXT, BODY[TEXT])."""
        return self.memo("split", lambda: split_header(self.raw))[1]

    @property
    def entity(self) -> Entity:
        return self.memo("entity", lambda: parse_entity(self.raw))

    def envelope(self) -> Envelope:
        return self.memo("envelope", lambda: envelope_of_header(self.header))

    def structure(self, extended: bool) -> BodyStructure:
        return self.memo(("structure", extended), lambda: structure_of(self.entity, extended))


class ParsedMessageCache:
    """A small LRU of parsed messages keyed by blob id, owned by one
    session (never shared globally). Bounded by entry count and by the
    total raw size; a message larger than ``max_bytes`` is parsed but not
    kept."""

    def __init__(self, entries: int = 4, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._entries = entries
        self._max_bytes = max_bytes
        self._items: OrderedDict[str, ParsedMessage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, blob_id: str, raw: bytes) -> ParsedMessage:
        """The parsed message for ``blob_id``; ``raw`` is its content."""
        with self._lock:
            found = self._items.get(blob_id)
            if found is not None:
                self._items.move_to_end(blob_id)
                return found
            parsed = ParsedMessage(raw)
            if len(raw) > self._max_bytes or self._entries < 1:
                return parsed
            self._items[blob_id] = parsed
            self._bytes += len(raw)
            while len(self._items) > self._entries or self._bytes > self._max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted.raw)
            return parsed

    def __len__(self) -> int:
        return len(self._items)


class MimeItemCache:
    """Server-wide ENVELOPE / BODYSTRUCTURE / BODY items by blob id, already
    rendered (``encoded``), and body sections of MIME parts (``BODY[1]``,
    ``BODY[2.MIME]``: the ones that need the message parsed), bounded by
    their total size (LRU).

    Blobs are content-addressed and never change, so an entry stays valid
    while kept; a class mail delivered to 30 mailboxes, or a message a
    client lists again, is parsed and rendered once, not once per FETCH.
    One instance per IMAP service (no global state).  Thread-safe: FETCH of
    a big body runs in a worker thread.
    """

    def __init__(self, max_bytes: int = 16 * 1024 * 1024,
                 max_section: int = 256 * 1024) -> None:
        self._max_bytes = max_bytes
        self._max_section = max_section
        self._items: OrderedDict[tuple[str, Any], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def item(self, blob_id: str, name: str, message: ParsedMessage) -> r.FetchValue:
        """The ``name`` item (ENVELOPE, BODYSTRUCTURE or BODY) of the message."""
        value: r.FetchValue = self._get((blob_id, name), lambda: _rendered(name, message),
                                        lambda value: len(getattr(value, "encoded", b"") or b""))
        return value

    def section(self, blob_id: str, spec: Section, message: ParsedMessage) -> bytes | None:
        """BODY[spec] of a MIME part of the message (RFC 9051 6.4.5); a
        section larger than ``max_section`` is answered but not kept."""
        key = (blob_id, spec)
        data: bytes | None = self._get(key, lambda: _section_of(message, spec),
                                       lambda data: 0 if data is None else len(data),
                                       self._max_section)
        return data

    def _get(self, key: tuple[str, Any], compute: Callable[[], Any],
             size_of: Callable[[Any], int], max_entry: int | None = None) -> Any:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found[0]
            self.misses += 1
        value = compute()  # outside the lock: parsing takes a while
        size = size_of(value)
        if max_entry is not None and size > max_entry:
            return value
        size += 200
        with self._lock:
            if key not in self._items:
                self._items[key] = (value, size)
                self._bytes += size
                while self._bytes > self._max_bytes and self._items:
                    _, (_, evicted) = self._items.popitem(last=False)
                    self._bytes -= evicted
        return value

    def __len__(self) -> int:
        return len(self._items)


def _rendered(name: str, message: ParsedMessage) -> r.FetchValue:
    from mailserver.imap.wire.serializer import body_structure_bytes, envelope_bytes

    if name == "ENVELOPE":
        envelope = message.envelope()
        return r.EnvelopeItem(envelope, envelope_bytes(envelope))
    extended = name == "BODYSTRUCTURE"
    structure = message.structure(extended)
    return r.BodyStructureItem(structure, extended, body_structure_bytes(structure, extended))


_MIME_ITEMS = frozenset({"ENVELOPE", "BODYSTRUCTURE", "BODY"})


def parsed_message(raw: bytes, blob_id: str | None,
                   cache: ParsedMessageCache | None) -> ParsedMessage:
    """From the cache when there is one and the blob has an id."""
    if cache is not None and blob_id is not None:
        return cache.get(blob_id, raw)
    return ParsedMessage(raw)


@dataclass(frozen=True)
class FetchResult:
    """The items of one ``* n FETCH (...)`` response and whether the
    session must store ``\\Seen`` (RFC 3501 6.4.5). When it must, ``items``
    already show ``\\Seen`` in FLAGS (added when FLAGS was not asked for,
    RFC 9051 6.4.5 "SHOULD be included")."""

    items: tuple[r.FetchValue, ...]
    sets_seen: bool = False

    def with_modseq(self, modseq: int) -> FetchResult:
        """After the session stored ``\\Seen`` with CONDSTORE enabled: the
        new mod-sequence replaces (or is added as) MODSEQ (RFC 7162 3.2)."""
        items = [item for item in self.items if not isinstance(item, r.ModSeqItem)]
        return replace(self, items=(*items, r.ModSeqItem(modseq)))


def expand_macros(items: Iterable[FetchAttribute]) -> list[FetchAttribute]:
    """ALL / FAST / FULL as their items (RFC 9051 6.4.5). The wire parser
    already expands them; a session building attributes itself may not."""
    out: list[FetchAttribute] = []
    for item in items:
        if isinstance(item, FetchItem) and item.name in MACROS:
            out.extend(FetchItem(name) for name in MACROS[item.name])
        else:
            out.append(item)
    return out


def needs_body(items: Iterable[FetchAttribute]) -> bool:
    """Whether any attribute needs the message blob (everything except
    FLAGS, UID, INTERNALDATE, RFC822.SIZE and MODSEQ)."""
    return any(not (isinstance(item, FetchItem) and item.name in _RECORD_ITEMS)
               for item in expand_macros(items))


_HEADER_ITEMS = frozenset({"ENVELOPE", "RFC822.HEADER"})
_HEADER_SECTIONS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"})


def needs_only_header(items: Iterable[FetchAttribute]) -> bool:
    """Whether every attribute that needs the message needs only its
    header block: ENVELOPE, RFC822.HEADER and the top-level BODY[HEADER],
    BODY[HEADER.FIELDS (...)], BODY[HEADER.FIELDS.NOT (...)] (any partial,
    PEEK or not). Then the session may read the header alone."""
    for item in expand_macros(items):
        if isinstance(item, FetchItem):
            if item.name in _RECORD_ITEMS or item.name in _HEADER_ITEMS:
                continue
            return False
        if isinstance(item, FetchBody) and not item.section.part \
                and item.section.text in _HEADER_SECTIONS:
            continue
        return False
    return True


def sets_seen(items: Iterable[FetchAttribute], flags: Iterable[str], *,
              read_only: bool = False) -> bool:
    """RFC 3501 6.4.5: BODY[...], BINARY[...] (not .PEEK), RFC822 and
    RFC822.TEXT set ``\\Seen`` unless it is set already or the mailbox was
    opened read-only (EXAMINE, RFC 9051 6.3.3)."""
    if read_only or any(flag.lower() == SEEN.lower() for flag in flags):
        return False
    for item in items:
        if isinstance(item, FetchBody | FetchBinary) and not item.peek:
            return True
        if isinstance(item, FetchItem) and item.name in _SEEN_ITEMS:
            return True
    return False


def fetch_response_items(items: Iterable[FetchAttribute], record: MessageRecord,
                         body: bytes | None, *, uid_fetch: bool = False, rev2: bool = False,
                         read_only: bool = False,
                         cache: ParsedMessageCache | None = None,
                         header: bytes | None = None,
                         items_cache: MimeItemCache | None = None) -> FetchResult:
    """The FETCH response items for ``record`` (RFC 9051 7.5.2), in the
    order asked, duplicates dropped; UID first for UID FETCH when not asked
    for (RFC 9051 6.4.9). Macros arrive expanded by the wire parser.

    ``body`` is the raw message and is required when ``needs_body(items)``.
    ``rev2`` is accepted for the session's convenience: the IMAP4rev2
    answers are the same here (RFC822.* stay answered, RFC 9051 Appendix E
    lets servers keep them; \\Recent is session state, added to FLAGS by an
    IMAP4rev1 session as it sends the response, ``SelectedView.with_recent``).
    Instead of ``body``, ``header`` may give the header block alone when
    ``needs_only_header(items)``; sizes then come from the record.
    ``items_cache`` (server-wide) keeps rendered ENVELOPE / BODYSTRUCTURE /
    BODY items by blob id.
    Raises UnknownCte for BINARY of an undecodable part and
    UnsupportedFetchItem for EMAILID / THREADID / SAVEDATE.
    """
    del rev2  # same items for IMAP4rev1 and IMAP4rev2, see docstring
    attributes, with_body, only_header, may_set_seen = _analysed(tuple(items))
    if body is None and header is not None:
        if not only_header:
            raise ValueError("these FETCH items need more than the header")
        message: ParsedMessage | None = ParsedMessage(header)
    elif with_body and body is None:
        raise ValueError("these FETCH items need the message body")
    else:
        message = None if body is None else parsed_message(body, record.blob_id, cache)
    # Most FETCHes cannot set \Seen at all: then the flags are not looked at.
    seen = may_set_seen and sets_seen(attributes, record.flags, read_only=read_only)
    flags = record.flags | {SEEN} if seen else record.flags
    size = record.size if body is None else len(body)
    values: list[r.FetchValue] = []
    if uid_fetch and FetchItem("UID") not in attributes:
        values.append(r.UidItem(record.uid))
    for attribute in attributes:
        if items_cache is not None and message is not None and record.blob_id is not None:
            if isinstance(attribute, FetchItem) and attribute.name in _MIME_ITEMS:
                values.append(items_cache.item(record.blob_id, attribute.name, message))
                continue
            if isinstance(attribute, FetchBody) and attribute.section.part:
                data = items_cache.section(record.blob_id, attribute.section, message)
                values.append(_body_item(attribute, data))
                continue
        values.append(_value(attribute, record, flags, size, message))
    if seen and FetchItem("FLAGS") not in attributes:
        values.append(r.FlagsItem(_flag_order(flags)))
    return FetchResult(tuple(values), seen)


@lru_cache(maxsize=256)
def _analysed(items: tuple[FetchAttribute, ...]
              ) -> tuple[list[FetchAttribute], bool, bool, bool]:
    """(expanded attributes without duplicates, needs_body, needs_only_header,
    whether any item may set \\Seen): worked out once per distinct item
    list, not once per message.  The list is shared: callers only read it."""
    attributes = list(dict.fromkeys(expand_macros(items)))
    return (attributes, needs_body(attributes), needs_only_header(attributes),
            sets_seen(attributes, ()))


def _flag_order(flags: frozenset[str]) -> tuple[str, ...]:
    # System flags first, then keywords: stable output for clients and tests.
    return tuple(sorted(flags, key=lambda flag: (not flag.startswith("\\"), flag.lower())))


def _value(attribute: FetchAttribute, record: MessageRecord, flags: frozenset[str],
           size: int, message: ParsedMessage | None) -> r.FetchValue:
    if isinstance(attribute, FetchItem):
        return _simple(attribute.name, record, flags, size, message)
    assert message is not None  # needs_body checked by the caller
    if isinstance(attribute, FetchBody):
        return _body_item(attribute, _section_of(message, attribute.section))
    if isinstance(attribute, FetchBinary):
        data = _binary_of(message, attribute.part)
        origin = None
        if attribute.partial is not None:
            origin, data = attribute.partial[0], _cut(data, attribute.partial)
        return r.BinaryItem(attribute.part, data, origin)
    if isinstance(attribute, FetchBinarySize):
        data = _binary_of(message, attribute.part)
        # The grammar has no NIL here (RFC 3516 4.2): a missing part is empty.
        return r.BinarySizeItem(attribute.part, 0 if data is None else len(data))
    raise TypeError(f"not a fetch attribute: {attribute!r}")


def _body_item(attribute: FetchBody, data: bytes | None) -> r.BodySectionItem:
    origin = None
    if attribute.partial is not None:
        origin, data = attribute.partial[0], _cut(data, attribute.partial)
    return r.BodySectionItem(attribute.section, data, origin)


def _simple(name: str, record: MessageRecord, flags: frozenset[str], size: int,
            message: ParsedMessage | None) -> r.FetchValue:
    if name == "FLAGS":
        return r.FlagsItem(_flag_order(flags))
    if name == "UID":
        return r.UidItem(record.uid)
    if name == "INTERNALDATE":
        return r.InternalDateItem(record.internal_date)
    if name == "RFC822.SIZE":
        return r.SizeItem(size)
    if name == "MODSEQ":
        return r.ModSeqItem(record.modseq)
    if message is None:
        raise UnsupportedFetchItem(name)
    if name == "ENVELOPE":
        return r.EnvelopeItem(message.envelope())
    if name == "BODYSTRUCTURE":
        return r.BodyStructureItem(message.structure(True), extended=True)
    if name == "BODY":
        return r.BodyStructureItem(message.structure(False), extended=False)
    if name == "RFC822":  # = BODY[] (RFC 3501 6.4.5)
        return r.Rfc822Item(name, message.raw)
    if name == "RFC822.HEADER":  # = BODY.PEEK[HEADER]
        return r.Rfc822Item(name, message.header)
    if name == "RFC822.TEXT":  # = BODY[TEXT]
        return r.Rfc822Item(name, message.text)
    raise UnsupportedFetchItem(name)


def _cut(data: bytes | None, partial: tuple[int, int]) -> bytes | None:
    """``<origin.count>``: an origin past the end gives the empty string
    (RFC 3501 6.4.5); a missing part stays NIL."""
    if data is None:
        return None
    origin, count = partial
    return data[origin:origin + count]


def _section_of(message: ParsedMessage, spec: Section) -> bytes | None:
    """BODY[spec] without re-parsing: the whole message and the top-level
    HEADER / TEXT come from the raw split; anything else from the entity
    tree through the MIME module's section resolution."""
    if not spec.part and spec.text is None:
        return message.raw
    if not spec.part and spec.text == "HEADER":
        return message.header
    if not spec.part and spec.text == "TEXT":
        return message.text
    if not spec.part and spec.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        # The top-level header needs no MIME parse (same octets as section_of).
        return header_subset(message.header, spec.fields, spec.text == "HEADER.FIELDS")
    return message.memo(("section", spec), lambda: section_of(message.entity, spec))


def _binary_of(message: ParsedMessage, part: tuple[int, ...]) -> bytes | None:
    """BINARY[part] (RFC 3516 4.2): the part with its transfer encoding
    removed; the whole message for ``BINARY[]``; None for a missing part."""
    if not part:
        return message.raw

    def decode() -> bytes | None:
        found = resolve_part(message.entity, part)
        if found is None:
            return None
        try:
            return decode_transfer_encoding(found[0])
        except UnknownTransferEncoding as error:
            raise UnknownCte(part, str(error)) from error

    return message.memo(("binary", part), decode)

"""Typed IMAP responses (RFC 9051 7, RFC 3501 7): status responses with
response codes, untagged data, continuation requests. Rendered to bytes by
``mailserver.imap.wire.serializer``."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from mailserver.imap.mime.types import BodyStructure, Envelope
from mailserver.imap.wire.fetch_items import Section
from mailserver.imap.wire.sequence import SequenceSet

# --- response codes (RFC 9051 7.1, RFC 5530, RFC 4315, RFC 7162, RFC 7889) ---


@dataclass(frozen=True)
class Code:
    """A code without structured data: ALERT, READ-ONLY, TRYCREATE, NOMODSEQ,
    CLOSED, TOOBIG, OVERQUOTA, AUTHENTICATIONFAILED, NONEXISTENT, ... An
    ``argument`` is sent verbatim after the name (it must not hold "]" or
    line breaks), e.g. ``BADCHARSET (US-ASCII UTF-8)`` from a ParseError."""

    name: str
    argument: str | None = None


@dataclass(frozen=True)
class NumberCode:
    """UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ, UNSEEN, APPENDLIMIT n."""

    name: str
    value: int


@dataclass(frozen=True)
class CapabilityCode:
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class PermanentFlagsCode:
    flags: tuple[str, ...]


@dataclass(frozen=True)
class AppendUidCode:
    """RFC 4315 3: ``APPENDUID uidvalidity uid-set``."""

    uidvalidity: int
    uids: SequenceSet


@dataclass(frozen=True)
class CopyUidCode:
    """RFC 4315 3: ``COPYUID uidvalidity source-uids destination-uids``."""

    uidvalidity: int
    source: SequenceSet
    destination: SequenceSet


@dataclass(frozen=True)
class ModifiedCode:
    """RFC 7162 3.1.3: ``MODIFIED sequence-set``."""

    numbers: SequenceSet


ResponseCode = (Code | NumberCode | CapabilityCode | PermanentFlagsCode | AppendUidCode
                | CopyUidCode | ModifiedCode)


# --- status responses ---------------------------------------------------------

@dataclass(frozen=True)
class Tagged:
    """``tag OK/NO/BAD [code] text`` (RFC 9051 7.1)."""

    tag: str
    status: str
    text: str
    code: ResponseCode | None = None


@dataclass(frozen=True)
class Untagged:
    """``* OK/NO/BAD/PREAUTH/BYE [code] text`` (RFC 9051 7.1)."""

    status: str
    text: str
    code: ResponseCode | None = None


@dataclass(frozen=True)
class Continuation:
    """``+ text`` (RFC 9051 7.5), or ``+ base64`` for a SASL ``challenge``."""

    text: str = "Ready for literal data"
    challenge: bytes | None = None


# --- untagged data ----------------------------------------------------------

@dataclass(frozen=True)
class CapabilityData:
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class EnabledData:
    """RFC 5161 3.2."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class FlagsData:
    flags: tuple[str, ...]


@dataclass(frozen=True)
class ExistsData:
    count: int


@dataclass(frozen=True)
class RecentData:
    count: int


@dataclass(frozen=True)
class ExpungeData:
    number: int


@dataclass(frozen=True)
class VanishedData:
    """RFC 7162 3.2.10."""

    uids: SequenceSet
    earlier: bool = False


@dataclass(frozen=True)
class SearchData:
    """``* SEARCH n...`` with ``(MODSEQ n)`` of RFC 7162 3.1.5."""

    numbers: tuple[int, ...]
    modseq: int | None = None


@dataclass(frozen=True)
class ESearchData:
    """RFC 4731 3.1 / RFC 9051 7.3.4."""

    tag: str | None
    uid: bool = False
    min: int | None = None
    max: int | None = None
    all: SequenceSet | None = None
    count: int | None = None
    modseq: int | None = None


@dataclass(frozen=True)
class ListData:
    """LIST / LSUB (RFC 9051 7.3.1) with CHILDINFO (RFC 5258 4) and
    OLDNAME (RFC 9051 7.3.1) extended data."""

    attributes: tuple[str, ...]
    delimiter: str | None
    mailbox: str
    childinfo: tuple[str, ...] = ()
    oldname: str | None = None
    lsub: bool = False


@dataclass(frozen=True)
class StatusData:
    """RFC 9051 7.3.2."""

    mailbox: str
    items: tuple[tuple[str, int], ...]


Namespaces = tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True)
class NamespaceData:
    """RFC 2342 5 / RFC 9051 7.3.3."""

    personal: Namespaces
    other: Namespaces
    shared: Namespaces


@dataclass(frozen=True)
class QuotaData:
    """RFC 9208 5.1: resources as (name, usage, limit)."""

    root: str
    resources: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class QuotaRootData:
    """RFC 9208 5.2."""

    mailbox: str
    roots: tuple[str, ...]


@dataclass(frozen=True)
class IdData:
    """RFC 2971 3.2."""

    params: tuple[tuple[str, str | None], ...] | None


# --- FETCH (RFC 9051 7.5.2) -------------------------------------------------

@dataclass(frozen=True)
class FlagsItem:
    flags: tuple[str, ...]


@dataclass(frozen=True)
class UidItem:
    uid: int


@dataclass(frozen=True)
class InternalDateItem:
    date: datetime.datetime


@dataclass(frozen=True)
class SizeItem:
    """RFC822.SIZE."""

    size: int


@dataclass(frozen=True)
class EnvelopeItem:
    """ENVELOPE; ``encoded`` is its rendering when a cache already holds it
    (``mailserver.imap.fetching.MimeItemCache``): the serializer sends it as is."""

    envelope: Envelope
    encoded: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BodyStructureItem:
    """BODYSTRUCTURE (``extended``) or BODY; ``encoded`` as for EnvelopeItem."""

    structure: BodyStructure
    extended: bool = True
    encoded: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class BodySectionItem:
    """``BODY[section]<origin> nstring``."""

    section: Section
    data: bytes | None
    origin: int | None = None


@dataclass(frozen=True)
class BinaryItem:
    """``BINARY[part]<origin>`` (RFC 3516 4.2), literal8 when data has NUL."""

    part: tuple[int, ...]
    data: bytes | None
    origin: int | None = None


@dataclass(frozen=True)
class BinarySizeItem:
    part: tuple[int, ...]
    size: int


@dataclass(frozen=True)
class ModSeqItem:
    """RFC 7162 3.1.4.1: ``MODSEQ (n)``."""

    modseq: int


@dataclass(frozen=True)
class Rfc822Item:
    """RFC822, RFC822.HEADER, RFC822.TEXT."""

    name: str
    data: bytes | None


FetchValue = (FlagsItem | UidItem | InternalDateItem | SizeItem | EnvelopeItem
              | BodyStructureItem | BodySectionItem | BinaryItem | BinarySizeItem
              | ModSeqItem | Rfc822Item)


@dataclass(frozen=True)
class FetchData:
    number: int
    items: tuple[FetchValue, ...]


Response = (Tagged | Untagged | Continuation | CapabilityData | EnabledData | FlagsData
            | ExistsData | RecentData | ExpungeData | VanishedData | SearchData | ESearchData
            | ListData | StatusData | NamespaceData | QuotaData | QuotaRootData | IdData
            | FetchData)

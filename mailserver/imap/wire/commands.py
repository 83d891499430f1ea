"""Typed IMAP commands (RFC 3501 6, RFC 9051 6 and the extensions we speak).

Each command is a frozen value; names are upper-cased, mailbox names are
decoded (modified UTF-7, or UTF-8 after ``ENABLE UTF8=ACCEPT``, RFC 6855 3).
The session layer dispatches on the class.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from mailserver.imap.wire.fetch_items import FetchAttribute
from mailserver.imap.wire.search import SearchKey
from mailserver.imap.wire.sequence import SequenceSet


@dataclass(frozen=True)
class Command:
    tag: str


# --- any state (RFC 9051 6.1) ---------------------------------------------

@dataclass(frozen=True)
class Capability(Command):
    """RFC 9051 6.1.1."""


@dataclass(frozen=True)
class Noop(Command):
    """RFC 9051 6.1.2."""


@dataclass(frozen=True)
class Logout(Command):
    """RFC 9051 6.1.3."""


@dataclass(frozen=True)
class Id(Command):
    """RFC 2971 3.1: ``params`` None is ``ID NIL``."""

    params: tuple[tuple[str, str | None], ...] | None = None


# --- not authenticated (RFC 9051 6.2) ---------------------------------------

@dataclass(frozen=True)
class StartTls(Command):
    """RFC 9051 6.2.1."""


@dataclass(frozen=True)
class Authenticate(Command):
    """RFC 9051 6.2.2; ``initial_response`` is SASL-IR (RFC 4959), decoded
    from base64 (``=`` is the empty response)."""

    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True)
class Login(Command):
    """RFC 9051 6.2.3."""

    username: str
    password: str


# --- authenticated (RFC 9051 6.3) -------------------------------------------

@dataclass(frozen=True)
class Enable(Command):
    """RFC 5161 3.1 / RFC 9051 6.3.1."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class QresyncParams:
    """RFC 7162 3.2.5.1: ``(QRESYNC (uidvalidity modseq [known-uids [seq-match]]))``."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True)
class Select(Command):
    """SELECT (RFC 9051 6.3.2) or, with ``read_only``, EXAMINE (6.3.3);
    ``condstore`` per RFC 7162 3.1.8, ``qresync`` per RFC 7162 3.2.5."""

    mailbox: str
    read_only: bool = False
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True)
class Create(Command):
    """RFC 9051 6.3.4, with ``USE (...)`` of RFC 6154 3."""

    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delete(Command):
    """RFC 9051 6.3.5."""

    mailbox: str


@dataclass(frozen=True)
class Rename(Command):
    """RFC 9051 6.3.6."""

    mailbox: str
    new_name: str


@dataclass(frozen=True)
class Subscribe(Command):
    """RFC 9051 6.3.7."""

    mailbox: str


@dataclass(frozen=True)
class Unsubscribe(Command):
    """RFC 9051 6.3.8."""

    mailbox: str


@dataclass(frozen=True)
class ListCommand(Command):
    """LIST (RFC 9051 6.3.9, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819,
    SPECIAL-USE RFC 6154). ``status_items`` is None unless RETURN STATUS."""

    reference: str
    patterns: tuple[str, ...]
    selection: tuple[str, ...] = ()
    return_subscribed: bool = False
    return_children: bool = False
    return_special_use: bool = False
    status_items: tuple[str, ...] | None = None
    extended: bool = False  # selection options, several patterns or RETURN given


@dataclass(frozen=True)
class Lsub(Command):
    """RFC 3501 6.3.9 (deprecated by RFC 9051 but still sent by clients)."""

    reference: str
    pattern: str | None  # None: not a valid name, nothing matches


@dataclass(frozen=True)
class Namespace(Command):
    """RFC 2342 5 / RFC 9051 6.3.10."""


@dataclass(frozen=True)
class Status(Command):
    """RFC 9051 6.3.11 (SIZE, DELETED) with HIGHESTMODSEQ (RFC 7162 3.1.6)
    and RECENT (RFC 3501 6.3.10)."""

    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class AppendMessage:
    """One message of APPEND; ``binary`` when sent as literal8 (RFC 3516 4.4)."""

    data: bytes
    flags: tuple[str, ...] = ()
    internal_date: datetime.datetime | None = None
    binary: bool = False


@dataclass(frozen=True)
class Append(Command):
    """RFC 9051 6.3.12; several messages with MULTIAPPEND (RFC 3502 6.3.11)."""

    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True)
class Idle(Command):
    """RFC 2177 / RFC 9051 6.3.13; ended by a ``DONE`` line (``IdleDone``)."""


@dataclass(frozen=True)
class IdleDone:
    """The untagged ``DONE`` line that ends IDLE (RFC 9051 6.3.13)."""


@dataclass(frozen=True)
class GetQuota(Command):
    """RFC 9208 4.2."""

    root: str


@dataclass(frozen=True)
class GetQuotaRoot(Command):
    """RFC 9208 4.3."""

    mailbox: str


@dataclass(frozen=True)
class Compress(Command):
    """RFC 4978 3."""

    mechanism: str


# --- selected (RFC 9051 6.4) ------------------------------------------------

@dataclass(frozen=True)
class Check(Command):
    """RFC 3501 6.4.1."""


@dataclass(frozen=True)
class Close(Command):
    """RFC 9051 6.4.1."""


@dataclass(frozen=True)
class Unselect(Command):
    """RFC 3691 / RFC 9051 6.4.2."""


@dataclass(frozen=True)
class Expunge(Command):
    """EXPUNGE (RFC 9051 6.4.3), or UID EXPUNGE of ``uids`` (RFC 4315 2.1)."""

    uids: SequenceSet | None = None


@dataclass(frozen=True)
class Search(Command):
    """SEARCH / UID SEARCH (RFC 9051 6.4.4). ``return_options`` None is a
    plain RFC 3501 SEARCH; a tuple (maybe empty: ``RETURN ()`` means ALL)
    asks for ESEARCH (RFC 4731) and SAVE (RFC 5182)."""

    key: SearchKey
    uid: bool = False
    charset: str | None = None
    return_options: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Fetch(Command):
    """FETCH / UID FETCH (RFC 9051 6.4.5); macros are expanded. With
    ``changed_since`` (RFC 7162 3.1.4.1) and ``vanished`` (RFC 7162 3.2.6)."""

    sequence_set: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    uid: bool = False
    changed_since: int | None = None
    vanished: bool = False


@dataclass(frozen=True)
class Store(Command):
    """STORE / UID STORE (RFC 9051 6.4.6); ``mode`` is ``"replace"``,
    ``"add"`` or ``"remove"``; ``unchanged_since`` per RFC 7162 3.1.3."""

    sequence_set: SequenceSet
    mode: str
    flags: tuple[str, ...]
    silent: bool = False
    uid: bool = False
    unchanged_since: int | None = None


@dataclass(frozen=True)
class Copy(Command):
    """COPY / UID COPY (RFC 9051 6.4.7)."""

    sequence_set: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True)
class Move(Command):
    """MOVE / UID MOVE (RFC 6851 3.1, RFC 9051 6.4.8)."""

    sequence_set: SequenceSet
    mailbox: str
    uid: bool = False

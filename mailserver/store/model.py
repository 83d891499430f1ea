"""Values and errors of the mail store (domain layer, no SQL, no protocol syntax).

Bulk per-message results (``MessageState``) are ``NamedTuple``s: immutable
and typed like a frozen dataclass but several times cheaper to build, which
matters for a SELECT snapshot of 100,000 messages.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import NamedTuple


class StoreError(Exception):
    """Base of every mail store error (translated once at the protocol edge)."""


class MailboxNotFound(StoreError):
    """No such mailbox (IMAP NO [NONEXISTENT], RFC 5530 3)."""


class MailboxExists(StoreError):
    """The target name is taken (IMAP NO [ALREADYEXISTS], RFC 5530 3)."""


class InvalidMailboxName(StoreError):
    """The name is not a valid mailbox name (IMAP NO [CANNOT], RFC 5530 3)."""


class MailboxHasChildren(StoreError):
    """DELETE of a mailbox with inferiors is refused (IMAP NO [HASCHILDREN], RFC 9051 7.1)."""


class CannotDeleteInbox(StoreError):
    """INBOX cannot be deleted (RFC 9051 6.3.4)."""


class InvalidFlag(StoreError):
    """An unknown ``\\``-flag (only the RFC 9051 2.3.2 system flags are stored)."""


class QuotaExceeded(StoreError):
    """The account's quota does not allow this (IMAP NO [OVERQUOTA], RFC 9208 5.3).

    ``permanent`` is true when the message alone is larger than the quota
    (SMTP 552 5.2.2 instead of 452 4.2.2, RFC 3463 3.3).
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class AccountNotFound(StoreError):
    """The account id does not exist in the directory."""


class FlagMode(enum.Enum):
    """STORE modes: FLAGS, +FLAGS, -FLAGS (RFC 9051 6.4.6)."""

    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True)
class MailboxInfo:
    """A mailbox's identity and its IMAP counters (RFC 9051 2.3.1.1, RFC 7162 3.1.2)."""

    id: int
    account_id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool


@dataclass(frozen=True)
class MailboxStatus:
    """A mailbox with the counts STATUS and LIST-STATUS report (RFC 9051 6.3.11)."""

    mailbox: MailboxInfo
    messages: int
    unseen: int
    size: int
    deleted: int


class MessageState(NamedTuple):
    """A message's mutable state: what SELECT, STORE and CONDSTORE report."""

    uid: int
    flags: frozenset[str]
    modseq: int


@dataclass(frozen=True)
class MessageMeta:
    """What FETCH needs besides the body (RFC 9051 2.3.3, 2.3.4)."""

    uid: int
    flags: frozenset[str]
    internal_date: dt.datetime
    size: int
    modseq: int
    blob_id: str


@dataclass(frozen=True)
class Snapshot:
    """The state of a mailbox at SELECT time: info plus every message in UID order."""

    mailbox: MailboxInfo
    messages: list[MessageState]


@dataclass(frozen=True)
class StoreResult:
    """Outcome of STORE: changed messages, UNCHANGEDSINCE failures (RFC 7162 3.2)."""

    updated: list[MessageState]
    modified: list[int]
    highestmodseq: int


@dataclass(frozen=True)
class CopyResult:
    """COPYUID data (RFC 4315 3): destination UIDVALIDITY and (source, dest) UID pairs."""

    uidvalidity: int
    pairs: list[tuple[int, int]]


@dataclass(frozen=True)
class AppendResult:
    """APPENDUID data (RFC 4315 3)."""

    mailbox_id: int
    uidvalidity: int
    uid: int


@dataclass(frozen=True)
class Changes:
    """What changed after a MODSEQ (RFC 7162 3.2.5 CHANGEDSINCE, 3.2.10 VANISHED)."""

    changed: list[MessageState]
    vanished: list[int]
    highestmodseq: int


@dataclass(frozen=True)
class Quota:
    """STORAGE resource usage in bytes (RFC 9208 5.1); ``limit`` None = unlimited."""

    used: int
    limit: int | None


@dataclass(frozen=True)
class StoredMessage:
    """A message with its body, for tests and simple readers (``read_mailbox``)."""

    uid: int
    flags: frozenset[str]
    body: bytes

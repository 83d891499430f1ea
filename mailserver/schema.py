"""SQLAlchemy models of the mail store (storage layer).

Bodies are content-addressed rows (``message_blobs``): a mail to a class of
30 is stored once and referenced by 30 ``messages`` rows.  The database commit
is the single durability point, so "250 after durable" means "after commit".

Flags are two columns chosen for cheap updates and searches: the five system
flags as a bit mask (``system_flags & 1 = 0`` is UNSEEN, ``& 8`` is
\\Deleted, usable in SQL on both backends) and the rarer keywords as one
space-separated text in the client's spelling (RFC 3501 2.3.2).

Everything an account owns hangs off ``accounts`` with ``ON DELETE CASCADE``
(``mail_accounts``, ``mailboxes`` -> ``messages``, ``expunged``), so purging a
leaver deletes the mail; orphaned blobs are then collected by
``MailStore.collect_garbage``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from directory.schema import Base, UtcDateTime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MessageBlobRow(Base):
    """One message body, keyed by the hex SHA-256 of its bytes."""

    __tablename__ = "message_blobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)


class MailAccountRow(Base):
    """Per-account mail state: the exact quota counter and the UIDVALIDITY clock.

    ``used_bytes`` is changed in the same transaction as every message insert
    or delete, so it always equals the sum of the account's message sizes
    without a scan.  ``last_uidvalidity`` survives mailbox deletion, so a
    re-created folder gets a strictly greater UIDVALIDITY (RFC 9051 2.3.1.1).
    """

    __tablename__ = "mail_accounts"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    last_uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)


class MailboxRow(Base):
    """An IMAP mailbox; ``name`` is the full name with '/' as separator."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1000))
    special_use: Mapped[str | None] = mapped_column(String(16), nullable=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uidnext: Mapped[int] = mapped_column(BigInteger, default=1)
    highestmodseq: Mapped[int] = mapped_column(BigInteger, default=1)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    # The first UID no IMAP4rev1 session has claimed as \Recent yet (RFC 3501
    # 2.3.2: a message is recent to one session only, the first to see it).
    recent_uid: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)

    # AUTOINCREMENT: SQLite would otherwise reuse the id of a deleted last row, and
    # an IMAP session still holding the old id would act on the new mailbox.
    __table_args__ = (UniqueConstraint("account_id", "name", name="mailbox_name_unique"),
                      {"sqlite_autoincrement": True})


class SubscriptionRow(Base):
    """A subscription whose mailbox no longer exists (RFC 3501 6.3.6: a
    server "MUST NOT unilaterally remove an existing mailbox name from the
    subscription list even if a mailbox by that name no longer exists").
    Subscriptions of existing mailboxes are ``MailboxRow.subscribed``."""

    __tablename__ = "mail_subscriptions"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(1000), primary_key=True)


class MessageRow(Base):
    """One message in one mailbox (RFC 9051 2.3.1: UID, flags, internal date, size)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInteger)
    # No cascade: a referenced blob must never go (garbage collection relies on it).
    blob_id: Mapped[str] = mapped_column(ForeignKey("message_blobs.id"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    internal_date: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    system_flags: Mapped[int] = mapped_column(Integer, default=0)
    keywords: Mapped[str] = mapped_column(Text, default="")
    modseq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("mailbox_id", "uid", name="message_uid_unique"),
        Index("ix_messages_mailbox_modseq", "mailbox_id", "modseq"),
    )


class ExpungedRow(Base):
    """A UID expunged at a MODSEQ: what QRESYNC reports as VANISHED (RFC 7162 3.2.10)."""

    __tablename__ = "expunged"

    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    modseq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_expunged_mailbox_modseq", "mailbox_id", "modseq"),)


class OutboundRow(Base):
    """One (message, remote recipient) waiting for the outbound SMTP client."""

    __tablename__ = "outbound_queue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    blob_id: Mapped[str] = mapped_column(ForeignKey("message_blobs.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    # Added by migration outq_0001 (the outbound branch): when the delay DSN went out.
    delay_warned_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (
        CheckConstraint("state IN ('queued','delivering','sent','bounced')",
                        name="outbound_state_ok"),
        Index("ix_outbound_due", "state", "next_attempt_at"),
        {"sqlite_autoincrement": True},  # queue ids are handed out; never reuse one
    )


class MailSettingsRow(Base):
    """Per-account webmail settings that delivery also reads (vacation, forwarding)."""

    __tablename__ = "mail_settings"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    signature: Mapped[str] = mapped_column(Text, default="")
    vacation_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    vacation_subject: Mapped[str] = mapped_column(String(200), default="")
    vacation_body: Mapped[str] = mapped_column(Text, default="")
    vacation_days: Mapped[int] = mapped_column(Integer, default=7)
    vacation_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    forward_to: Mapped[str | None] = mapped_column(String(320), nullable=True)
    forward_keep: Mapped[bool] = mapped_column(Boolean, default=True)


class VacationReplyRow(Base):
    """When a vacation reply last went to a sender (RFC 3834 2: once per period)."""

    __tablename__ = "vacation_replies"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    sender: Mapped[str] = mapped_column(String(320), primary_key=True)
    replied_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ImageSenderRow(Base):
    """A sender whose remote images this reader always wants to see (webmail)."""

    __tablename__ = "webmail_image_senders"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    sender: Mapped[str] = mapped_column(String(320), primary_key=True)


class MessageSearchRow(Base):
    """The searchable text of one body (by blob: shared by all its copies).

    Trigram indexes (FTS5 on SQLite, pg_trgm on PostgreSQL) are made by the
    migration ``mail_0002_webmail``, not by the model."""

    __tablename__ = "message_search"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob_id: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    sender: Mapped[str] = mapped_column(Text)
    recipients: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # The first message of its conversation (mailserver.store.search.thread_root).
    thread_root: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (UniqueConstraint("blob_id", name="message_search_blob_unique"),
                      {"sqlite_autoincrement": True})


class SieveScriptRow(Base):
    """An account's Sieve scripts (RFC 5804 1.1: named, at most one active)."""

    __tablename__ = "sieve_scripts"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    script: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)

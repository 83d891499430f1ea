"""SQLAlchemy models of the messenger (on the directory's ``Base.metadata``).

Users of this server are directory accounts: everything a user owns (devices,
tokens, filters, account data, keys) has a foreign key to ``accounts`` with
ON DELETE CASCADE, so purging an account removes its messenger data too.
Room data (events, state, memberships) is keyed by Matrix ids, because remote
users (federation) have no account here.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from directory.schema import Base, UtcDateTime

ID = 255  # Matrix ids are at most 255 bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RoomRow(Base):
    __tablename__ = "matrix_rooms"

    room_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    room_version: Mapped[str] = mapped_column(String(32))
    creator: Mapped[str] = mapped_column(String(ID))
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)


class EventRow(Base):
    """Every accepted event; ``stream_ordering`` is the global order /sync tokens use."""

    __tablename__ = "matrix_events"

    event_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    stream_ordering: Mapped[int] = mapped_column(BigInteger, unique=True)
    room_id: Mapped[str] = mapped_column(
        ForeignKey("matrix_rooms.room_id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(ID))
    state_key: Mapped[str | None] = mapped_column(String(ID), nullable=True)
    sender: Mapped[str] = mapped_column(String(ID))
    depth: Mapped[int] = mapped_column(BigInteger)
    origin_server_ts: Mapped[int] = mapped_column(BigInteger)
    # The PDU as canonical JSON; after a redaction, the redacted PDU (same event id).
    json: Mapped[str] = mapped_column(Text)
    redacted: Mapped[bool] = mapped_column(Boolean, default=False)
    redacted_by: Mapped[str | None] = mapped_column(String(ID), nullable=True)
    # The room state after this event (``matrix_state_groups``), set in rooms that
    # reach other servers; None where the linear stream says it (one server).
    state_group: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        Index("ix_matrix_events_room_stream", "room_id", "stream_ordering"),
        Index("ix_matrix_events_room_state", "room_id", "type", "state_key", "stream_ordering"),
    )


class RoomStateRow(Base):
    """The current state of each room: (type, state_key) -> event."""

    __tablename__ = "matrix_room_state"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("matrix_rooms.room_id", ondelete="CASCADE"), primary_key=True)
    type: Mapped[str] = mapped_column(String(ID), primary_key=True)
    state_key: Mapped[str] = mapped_column(String(ID), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("matrix_events.event_id"))


class MembershipRow(Base):
    """Each user's current membership per room (a projection of the state)."""

    __tablename__ = "matrix_room_memberships"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("matrix_rooms.room_id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(ID), primary_key=True, index=True)
    membership: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(ID))
    stream_ordering: Mapped[int] = mapped_column(BigInteger)
    forgotten: Mapped[bool] = mapped_column(Boolean, default=False)


class RoomAliasRow(Base):
    __tablename__ = "matrix_room_aliases"

    alias: Mapped[str] = mapped_column(String(ID), primary_key=True)
    room_id: Mapped[str] = mapped_column(
        ForeignKey("matrix_rooms.room_id", ondelete="CASCADE"), index=True)
    creator: Mapped[str] = mapped_column(String(ID))


class DeviceRow(Base):
    __tablename__ = "matrix_devices"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_seen: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_seen_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Device identity keys (E2EE) as uploaded, canonical JSON.
    keys_json: Mapped[str | None] = mapped_column(Text, nullable=True)


class AccessTokenRow(Base):
    """Access tokens by their sha256: a database leak does not leak sessions."""

    __tablename__ = "matrix_access_tokens"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(Integer, index=True)
    device_id: Mapped[str] = mapped_column(String(ID))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)

    __table_args__ = (
        ForeignKeyConstraint(["account_id", "device_id"],
                             ["matrix_devices.account_id", "matrix_devices.device_id"],
                             ondelete="CASCADE"),
    )


class TxnRow(Base):
    """Client transaction ids: the same (device, txn id) always yields one event."""

    __tablename__ = "matrix_txn_ids"

    account_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    txn_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(ID), index=True)

    __table_args__ = (
        ForeignKeyConstraint(["account_id", "device_id"],
                             ["matrix_devices.account_id", "matrix_devices.device_id"],
                             ondelete="CASCADE"),
    )


class FilterRow(Base):
    __tablename__ = "matrix_filters"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    filter_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    json: Mapped[str] = mapped_column(Text)


class AccountDataRow(Base):
    """Global (room_id "") and per-room account data; stream_id orders changes for /sync."""

    __tablename__ = "matrix_account_data"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    room_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    type: Mapped[str] = mapped_column(String(ID), primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    stream_id: Mapped[int] = mapped_column(BigInteger, index=True)


class ReceiptRow(Base):
    __tablename__ = "matrix_receipts"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("matrix_rooms.room_id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    receipt_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(ID))
    ts: Mapped[int] = mapped_column(BigInteger)
    # Position in the receipts stream (/sync ephemeral events); matrix_0002.
    stream_id: Mapped[int] = mapped_column(BigInteger, default=0, index=True)


class OneTimeKeyRow(Base):
    """Uploaded one-time keys (E2EE); /keys/claim hands out and deletes one."""

    __tablename__ = "matrix_one_time_keys"

    account_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(ID), primary_key=True)  # "algorithm:id"
    json: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        ForeignKeyConstraint(["account_id", "device_id"],
                             ["matrix_devices.account_id", "matrix_devices.device_id"],
                             ondelete="CASCADE"),
    )


# --- matrix_0002 ---------------------------------------------------------------------


class GroupRoomRow(Base):
    """The room the server keeps for a directory group (messenger.school_rooms).

    Keyed by the group's id, not its name, so renaming a group keeps its room;
    deleting the group drops the link (the room and its history stay).
    """

    __tablename__ = "matrix_group_rooms"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    room_id: Mapped[str] = mapped_column(
        ForeignKey("matrix_rooms.room_id", ondelete="CASCADE"), unique=True)


class MediaRow(Base):
    """An uploaded file; the bytes live on disk under their sha256 (messenger.media)."""

    __tablename__ = "matrix_media"

    media_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(255))
    upload_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)
    # The event stream's position at upload: events that can name the file come
    # after it (messenger.media checks who may download; None: uploaded before).
    stream_position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ToDeviceRow(Base):
    """A to-device message waiting for its device (spec 11.11.3 "Send-to-Device
    messaging"); deleted once the device syncs with a token past it."""

    __tablename__ = "matrix_to_device"

    stream_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(Integer)
    device_id: Mapped[str] = mapped_column(String(ID))
    sender: Mapped[str] = mapped_column(String(ID))
    type: Mapped[str] = mapped_column(String(ID))
    content: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        ForeignKeyConstraint(["account_id", "device_id"],
                             ["matrix_devices.account_id", "matrix_devices.device_id"],
                             ondelete="CASCADE"),
        Index("ix_matrix_to_device_target", "account_id", "device_id", "stream_id"),
    )


class DeviceListChangeRow(Base):
    """A user's devices or keys changed at ``stream_id`` (sync ``device_lists``)."""

    __tablename__ = "matrix_device_list_changes"

    stream_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[str] = mapped_column(String(ID), index=True)


# --- matrix_0003 ---------------------------------------------------------------------


class CrossSigningKeyRow(Base):
    """A user's cross-signing key of one usage: master, self_signing or user_signing
    (spec: Client-Server API "Cross-signing"), as uploaded, with the master key's signature."""

    __tablename__ = "matrix_cross_signing_keys"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    usage: Mapped[str] = mapped_column(String(16), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))  # unpadded base64 ed25519 key
    json: Mapped[str] = mapped_column(Text)


class CrossSigningSignatureRow(Base):
    """A signature added later (/keys/signatures/upload) to one of the account's keys:
    a device key (``target_key_id`` = device id) or a cross-signing key (= its public
    key).  Signers are the owner or, on master keys, another user's user-signing key."""

    __tablename__ = "matrix_cross_signing_signatures"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    target_key_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    signer_user_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    signer_key_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    signature: Mapped[str] = mapped_column(Text)


class KeyBackupVersionRow(Base):
    """A version of a user's server-side key backup (spec: Client-Server API "Server-side key
    backups").  Deleted versions stay as rows so their numbers are never reused."""

    __tablename__ = "matrix_key_backup_versions"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    algorithm: Mapped[str] = mapped_column(String(ID))
    auth_data: Mapped[str] = mapped_column(Text)
    etag: Mapped[int] = mapped_column(BigInteger, default=0)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class KeyBackupSessionRow(Base):
    """One Megolm session's key in a backup version; ``session_data`` is the client's
    ciphertext, stored as it came."""

    __tablename__ = "matrix_key_backup_sessions"

    account_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    room_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    first_message_index: Mapped[int] = mapped_column(BigInteger)
    forwarded_count: Mapped[int] = mapped_column(BigInteger)
    is_verified: Mapped[bool] = mapped_column(Boolean)
    session_data: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        ForeignKeyConstraint(["account_id", "version"],
                             ["matrix_key_backup_versions.account_id",
                              "matrix_key_backup_versions.version"],
                             ondelete="CASCADE"),
    )


# --- matrix_0004 ---------------------------------------------------------------------


class PusherRow(Base):
    """An HTTP pusher of a user's device (spec: Client-Server API "Push Notifications"):
    where the push gateway is and which pushkey it knows the device by."""

    __tablename__ = "matrix_pushers"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pushkey: Mapped[str] = mapped_column(String(512), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(ID), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    app_display_name: Mapped[str] = mapped_column(String(ID))
    device_display_name: Mapped[str] = mapped_column(String(ID))
    profile_tag: Mapped[str | None] = mapped_column(String(ID), nullable=True)
    lang: Mapped[str] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)  # the client's data object as JSON, url included
    pushkey_ts: Mapped[int] = mapped_column(BigInteger)  # seconds, as the gateway gets it

    __table_args__ = (Index("ix_matrix_pushers_app_pushkey", "app_id", "pushkey"),)


# --- matrix_0005 ---------------------------------------------------------------------


class RelationRow(Base):
    """An event that relates to another (spec: Client-Server API "Forming relationships
    between events": ``content["m.relates_to"]`` with ``rel_type`` and ``event_id``),
    kept apart so /relations, /threads and bundled aggregations need no JSON scan.
    A redaction strips ``m.relates_to``, so redacting the event deletes its row."""

    __tablename__ = "matrix_event_relations"

    event_id: Mapped[str] = mapped_column(
        ForeignKey("matrix_events.event_id", ondelete="CASCADE"), primary_key=True)
    room_id: Mapped[str] = mapped_column(String(ID))
    relates_to: Mapped[str] = mapped_column(String(ID))
    rel_type: Mapped[str] = mapped_column(String(ID))
    event_type: Mapped[str] = mapped_column(String(ID))
    sender: Mapped[str] = mapped_column(String(ID))
    # m.annotation's key (the reaction's emoji); None for other relation types.
    aggregation_key: Mapped[str | None] = mapped_column(String(ID), nullable=True)
    stream_ordering: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_matrix_event_relations_target", "relates_to", "rel_type", "stream_ordering"),
        Index("ix_matrix_event_relations_room", "room_id", "rel_type", "stream_ordering"),
    )


# --- matrix_0006 ---------------------------------------------------------------------


class ReportRow(Base):
    """A user's report of an event or a whole room to the school's admins (spec:
    Client-Server API "Reporting content"); ``event_id`` is None for a room report."""

    __tablename__ = "matrix_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(String(ID), index=True)
    event_id: Mapped[str | None] = mapped_column(String(ID), nullable=True)
    reporter: Mapped[str] = mapped_column(String(ID))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)


# --- bridge_0001 ----------------------------------------------------------------------


class MailBridgedRow(Base):
    """A mail posted into a room by the mail bridge (messenger.mail_bridge): one row per
    (room, Message-ID) so that the same mail delivered again is not posted twice.
    ``message_key`` is the SHA-256 of the Message-ID (ids may be up to 998 bytes)."""

    __tablename__ = "matrix_mail_bridged"

    room_id: Mapped[str] = mapped_column(
        ForeignKey("matrix_rooms.room_id", ondelete="CASCADE"), primary_key=True)
    message_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    bridged_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)
    # bridge_0004: the event the mail became, the root of its room thread (itself for
    # a mail that starts one) and the Message-ID (replies by mail find their thread).
    event_id: Mapped[str | None] = mapped_column(String(ID), nullable=True)
    thread_root: Mapped[str | None] = mapped_column(String(ID), nullable=True)
    message_id: Mapped[str | None] = mapped_column(Text, nullable=True)


# --- bridge_0002 ----------------------------------------------------------------------


class BridgeGroupRow(Base):
    """A group's own bridge settings (messenger.bridge_groups); no row: the defaults
    of its kind.  ``mail_to_room`` None: the kind's default (on for class and course)."""

    __tablename__ = "matrix_bridge_groups"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    mail_to_room: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # Room announcements are mailed to the parents of pupil members too.
    parents_digest: Mapped[bool] = mapped_column(Boolean, default=False)


# --- bridge_0003 ----------------------------------------------------------------------


class DigestRecipientRow(Base):
    """A person's room digests by mail (messenger.room_digest): whether they want them
    (``enabled``, their own setting), up to which message time they were considered
    (``up_to_ms``, origin_server_ts) and when the last digest went out."""

    __tablename__ = "matrix_digest_recipients"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    up_to_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)

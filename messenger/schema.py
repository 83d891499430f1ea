"""The messenger's tables, imported by ``conf.migrate.all_metadata`` for Alembic."""

from __future__ import annotations

from messenger.storage.tables import (
    AccessTokenRow,
    AccountDataRow,
    DeviceRow,
    EventRow,
    FilterRow,
    MembershipRow,
    OneTimeKeyRow,
    ReceiptRow,
    RoomAliasRow,
    RoomRow,
    RoomStateRow,
    TxnRow,
)

__all__ = [
    "AccessTokenRow", "AccountDataRow", "DeviceRow", "EventRow", "FilterRow", "MembershipRow",
    "OneTimeKeyRow", "ReceiptRow", "RoomAliasRow", "RoomRow", "RoomStateRow", "TxnRow",
]

"""The messenger's tables, imported by ``conf.migrate.all_metadata`` for Alembic."""

from __future__ import annotations

from messenger.storage.tables import (
    AccessTokenRow,
    AccountDataRow,
    DeviceListChangeRow,
    DeviceRow,
    EventRow,
    FilterRow,
    GroupRoomRow,
    MediaRow,
    MembershipRow,
    OneTimeKeyRow,
    ReceiptRow,
    RelationRow,
    ReportRow,
    RoomAliasRow,
    RoomRow,
    RoomStateRow,
    ToDeviceRow,
    TxnRow,
)

__all__ = [
    "AccessTokenRow", "AccountDataRow", "DeviceListChangeRow", "DeviceRow", "EventRow",
    "FilterRow", "GroupRoomRow", "MediaRow", "MembershipRow", "OneTimeKeyRow", "ReceiptRow",
    "RelationRow", "ReportRow", "RoomAliasRow", "RoomRow", "RoomStateRow", "ToDeviceRow", "TxnRow",
]

"""The messenger's tables, imported by ``conf.migrate.all_metadata`` for Alembic."""

from __future__ import annotations

from messenger.storage.dag_tables import ForwardExtremityRow, OutlierEventRow, StateGroupRow
from messenger.storage.push_tables import PushActionRow
from messenger.storage.remote_media import RemoteMediaRow
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
    "FilterRow", "ForwardExtremityRow", "GroupRoomRow", "MediaRow", "MembershipRow",
    "OneTimeKeyRow", "OutlierEventRow", "PushActionRow", "ReceiptRow", "RelationRow",
    "RemoteMediaRow", "ReportRow", "RoomAliasRow", "RoomRow", "RoomStateRow", "StateGroupRow",
    "ToDeviceRow", "TxnRow",
]

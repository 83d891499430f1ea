"""Pushers: stored, listed, replaced and removed per (account, app_id, pushkey)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.storage.tables import PusherRow


@dataclass(frozen=True)
class Pusher:
    account_id: int
    user_id: str
    app_id: str
    pushkey: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]
    pushkey_ts: int

    def client_view(self) -> dict[str, Any]:
        """The shape of ``GET /pushers``."""
        view = {"pushkey": self.pushkey, "kind": self.kind, "app_id": self.app_id,
                "app_display_name": self.app_display_name,
                "device_display_name": self.device_display_name, "lang": self.lang,
                "data": self.data}
        if self.profile_tag is not None:
            view["profile_tag"] = self.profile_tag
        return view


def _pusher(row: PusherRow) -> Pusher:
    return Pusher(row.account_id, row.user_id, row.app_id, row.pushkey, row.kind,
                  row.app_display_name, row.device_display_name, row.profile_tag, row.lang,
                  json.loads(row.data), row.pushkey_ts)


async def put_pusher(session: AsyncSession, pusher: Pusher, *, append: bool) -> None:
    """Create or replace; without ``append`` other users' pushers with the same app id
    and pushkey go (spec: the pushkey moved to this user)."""
    if not append:
        await session.execute(delete(PusherRow).where(
            PusherRow.app_id == pusher.app_id, PusherRow.pushkey == pusher.pushkey,
            PusherRow.account_id != pusher.account_id))
    await session.merge(PusherRow(
        account_id=pusher.account_id, user_id=pusher.user_id, app_id=pusher.app_id,
        pushkey=pusher.pushkey, kind=pusher.kind, app_display_name=pusher.app_display_name,
        device_display_name=pusher.device_display_name, profile_tag=pusher.profile_tag,
        lang=pusher.lang, data=json.dumps(pusher.data), pushkey_ts=pusher.pushkey_ts))


async def delete_pusher(session: AsyncSession, account_id: int, app_id: str,
                        pushkey: str) -> None:
    await session.execute(delete(PusherRow).where(
        PusherRow.account_id == account_id, PusherRow.app_id == app_id,
        PusherRow.pushkey == pushkey))


async def pushers_of_account(session: AsyncSession, account_id: int) -> list[Pusher]:
    rows = await session.scalars(select(PusherRow).where(PusherRow.account_id == account_id)
                                 .order_by(PusherRow.app_id, PusherRow.pushkey))
    return [_pusher(r) for r in rows]


async def pushers_of_user(session: AsyncSession, user_id: str) -> list[Pusher]:
    rows = await session.scalars(select(PusherRow).where(PusherRow.user_id == user_id)
                                 .order_by(PusherRow.app_id, PusherRow.pushkey))
    return [_pusher(r) for r in rows]


async def pushers_of_users(session: AsyncSession, user_ids: list[str]) -> list[Pusher]:
    """The pushers of these users (one query, however many)."""
    if not user_ids:
        return []
    rows = await session.scalars(select(PusherRow).where(PusherRow.user_id.in_(user_ids))
                                 .order_by(PusherRow.user_id, PusherRow.app_id,
                                           PusherRow.pushkey))
    return [_pusher(r) for r in rows]


async def users_with_pushers(session: AsyncSession) -> frozenset[str]:
    """Every user with at least one pusher."""
    return frozenset(await session.scalars(select(PusherRow.user_id).distinct()))


def pusher_data_for_gateway(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the gateway gets of ``data``: everything but the url (spec: Push Gateway API)."""
    return {k: v for k, v in data.items() if k != "url"}

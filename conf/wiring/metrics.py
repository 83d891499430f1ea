"""Wiring of the metrics and health listener (``federation.metrics``): the
measurements made at scrape time (outbound queue, database round trip) and the
readiness check (failed logins: ``conf.wiring.login_counter``)."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text

from federation.metrics import MetricsServer
from mailserver.store import queries as q

if TYPE_CHECKING:
    from conf.app import School, Service

_STATES = ("queued", "delivering", "sent", "bounced")


def build(school: School) -> list[Service]:
    settings = school.settings.metrics
    if settings.port < 0:
        return []
    metrics = school.metrics
    db = school.db
    outbound = q.outbound

    async def refresh() -> None:
        started = time.perf_counter()
        async with db.read() as session:
            await session.execute(text("SELECT 1"))
        metrics.db_seconds.observe(time.perf_counter() - started)
        async with db.read() as session:
            counts: dict[str, int] = {state: int(n) for state, n in (await session.execute(
                select(outbound.c.state, func.count()).group_by(outbound.c.state))).all()}
            oldest = (await session.execute(select(func.min(outbound.c.created_at)).where(
                outbound.c.state == "queued"))).scalar()
        for state in _STATES:
            metrics.outbound_messages.labels(state).set(counts.get(state, 0))
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        age = (dt.datetime.now(dt.UTC) - oldest).total_seconds() if oldest else 0.0
        metrics.outbound_oldest_seconds.set(max(age, 0.0))

    async def ready() -> str | None:
        async with db.read() as session:
            await session.execute(text("SELECT 1"))
        return None if school.started else "services starting"

    # Counters are per process: with serve --workers N, worker I listens on port + I
    # (scrape each; sum in the queries), since one port would answer for a random one.
    port = settings.port + school.worker_index if settings.port > 0 else settings.port
    return [MetricsServer(metrics, settings.bind, port, refresh=refresh, ready=ready)]

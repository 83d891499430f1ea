"""The federation outbox: batches keep queue order within the spec's limits, a
delivered batch leaves, failures back off exponentially up to a day."""

from __future__ import annotations

import datetime as dt

from directory.db import Database
from federation.matrix.outbox import MAX_EDUS_PER_TXN, MAX_PDUS_PER_TXN, Outbox
from federation.matrix.sender import MAX_BACKOFF_SECONDS, backoff_after

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def test_backoff_doubles_up_to_a_day() -> None:
    assert [backoff_after(n, 5).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff_after(40, 5).total_seconds() == MAX_BACKOFF_SECONDS


async def test_batches_keep_order_within_the_limits(db: Database) -> None:
    outbox = Outbox(db)
    await outbox.enqueue(["b.test", "c.test"], pdus=[{"n": n} for n in range(70)],
                         edus=[{"e": n} for n in range(120)])
    first = await outbox.next_batch("b.test")
    assert first is not None
    assert [p["n"] for p in first.pdus] == list(range(MAX_PDUS_PER_TXN))
    assert first.edus == ()  # the EDUs were queued after all 70 PDUs: they wait
    await outbox.delivered(first, NOW)
    second = await outbox.next_batch("b.test")
    assert second is not None and second.txn_id != first.txn_id
    assert [p["n"] for p in second.pdus] == list(range(50, 70))
    assert [e["e"] for e in second.edus] == list(range(MAX_EDUS_PER_TXN))
    # c.test's queue is its own.
    other = await outbox.next_batch("c.test")
    assert other is not None and len(other.pdus) == MAX_PDUS_PER_TXN


async def test_a_reused_row_id_gets_a_new_txn_id(db: Database) -> None:
    """SQLite hands the id of a deleted last row out again: the next transaction must
    not share the delivered one's txn id (the receiver would answer it from its record
    and never process it)."""
    outbox = Outbox(db)
    await outbox.enqueue(["b.test"], edus=[{"edu_type": "m.typing", "n": 1}])
    first = await outbox.next_batch("b.test")
    assert first is not None
    await outbox.delivered(first, NOW)
    await outbox.enqueue(["b.test"], edus=[{"edu_type": "m.typing", "n": 2}])
    second = await outbox.next_batch("b.test")
    assert second is not None and second.edus[0]["n"] == 2
    assert second.txn_id != first.txn_id
    again = await outbox.next_batch("b.test")  # a retry of the same rows: the same id
    assert again is not None and again.txn_id == second.txn_id


async def test_failures_back_off_and_success_resets(db: Database) -> None:
    outbox = Outbox(db)
    await outbox.enqueue(["b.test"], pdus=[{"n": 1}])
    assert await outbox.destinations_due(NOW) == (["b.test"], None)
    failures = await outbox.failed("b.test", "down", NOW, lambda n: dt.timedelta(seconds=60))
    assert failures == 1
    due, next_retry = await outbox.destinations_due(NOW)
    assert due == [] and next_retry == NOW + dt.timedelta(seconds=60)
    assert (await outbox.destinations_due(NOW + dt.timedelta(seconds=61)))[0] == ["b.test"]
    batch = await outbox.next_batch("b.test")
    assert batch is not None
    await outbox.delivered(batch, NOW)
    [status] = await outbox.status()
    assert (status.queued, status.failures, status.retry_at, status.last_error) == (
        0, 0, None, "")


async def test_a_destination_that_is_up_ends_its_backoff(db: Database) -> None:
    outbox = Outbox(db)
    await outbox.enqueue(["b.test"], pdus=[{"n": 1}])
    assert not await outbox.end_backoff("b.test")  # never failed: nothing to end
    await outbox.failed("b.test", "down", NOW, lambda n: dt.timedelta(hours=1))
    await outbox.failed("b.test", "down", NOW, lambda n: dt.timedelta(hours=1))
    schedule = await outbox.schedule(NOW)
    assert schedule.due == [] and schedule.waiting == {"b.test"}
    assert await outbox.end_backoff("b.test")
    schedule = await outbox.schedule(NOW)
    assert schedule.due == ["b.test"] and schedule.waiting == frozenset()
    [status] = await outbox.status()
    assert (status.failures, status.retry_at, status.last_error) == (0, None, "down")
    assert not await outbox.end_backoff("b.test")

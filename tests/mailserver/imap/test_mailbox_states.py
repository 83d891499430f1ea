"""The shared mailbox states (mailserver.imap.mailbox_states) and the
group-committed STORE (mailserver.store.write_queue) against the store's own
answers (RFC 7162 3.1.4.1 CHANGEDSINCE, 3.2.10 VANISHED; RFC 9051 6.4.6)."""

from __future__ import annotations

import asyncio

import pytest

from mailserver.imap.mailbox_states import MailboxStates, adopt_uids
from mailserver.imap.session.view import SelectedView
from mailserver.store import MailboxNotFound
from mailserver.store.model import FlagMode, InvalidFlag
from tests.mailserver.imap.session.helpers import deliver, make_account, sample_message


async def _inbox(school, n: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    account = await make_account(school)
    for i in range(n):
        await deliver(school, account, sample_message(f"Nr {i}"))
    box = (await school.mail_store.mailbox_status(account, "INBOX")).mailbox
    return account, box.id


def _as_store(state) -> list[tuple[int, frozenset[str], int]]:  # type: ignore[no-untyped-def]
    return list(zip(state.uids, state.flags, state.modseqs, strict=True))


async def test_state_follows_the_store(school) -> None:  # type: ignore[no-untyped-def]
    store = school.mail_store
    account, box = await _inbox(school, 5)
    states = MailboxStates(store.db)
    state = await states.current(box)
    assert state is not None and state.counters is not None
    start = state.modseq
    snapshot = await store.select_snapshot(account, "INBOX")
    assert _as_store(state) == [tuple(m) for m in snapshot.messages]

    await store.store_flags(box, [2, 4], FlagMode.ADD, ["\\Seen", "Wichtig"])
    await store.store_flags(box, [3], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(box)
    await deliver(school, account, sample_message("Neu"))
    # Without a refresh the state may lag; with one it matches the store.
    state = await states.current(box)
    assert state is not None
    snapshot = await store.select_snapshot(account, "INBOX")
    assert _as_store(state) == [tuple(m) for m in snapshot.messages]
    assert state.counters.uidnext == snapshot.mailbox.uidnext
    for since in range(start - 1, state.modseq + 1):
        mine, theirs = state.changes_since(since), await store.changes_since(box, since)
        if since < state.floor:
            assert mine is None
            continue
        assert mine is not None
        assert mine.changed == theirs.changed and mine.vanished == theirs.vanished
        assert mine.highestmodseq == theirs.highestmodseq

    await store.create_mailbox(account, "Weg")
    gone = (await store.mailbox_status(account, "Weg")).mailbox.id
    assert await states.current(gone) is not None
    await store.delete_mailbox(account, "Weg")
    assert await states.current(gone) is None  # deleted: no state, callers use the store
    assert await states.by_name(account, "INBOX") is state
    assert await states.by_name(account, "Gibt es nicht") is None


async def test_concurrent_callers_share_refreshes(school, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mailserver.store import bulk_reads

    _, box = await _inbox(school, 3)
    states = MailboxStates(school.mail_store.db)
    await states.current(box)
    calls = 0
    real = bulk_reads.mailbox_delta

    async def counting(*args: object) -> object:
        nonlocal calls
        calls += 1
        return await real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(bulk_reads, "mailbox_delta", counting)
    db = school.mail_store.db
    inline = db.reads_inline
    # The shared refresh (PostgreSQL; on SQLite the first load of a mailbox).
    monkeypatch.setattr(type(db), "reads_inline", property(lambda self: False))
    await asyncio.gather(*(states.current(box) for _ in range(50)))
    assert 1 <= calls <= 2  # one running refresh, at most one more for late callers
    monkeypatch.undo()
    monkeypatch.setattr(bulk_reads, "mailbox_delta", counting)
    calls = 0
    turns: list[int] = []
    asyncio.get_running_loop().call_soon(turns.append, 1)
    state = await states.current(box)
    assert calls == 1  # a caller always gets a refresh that began after it asked
    # On SQLite the caller reads the small delta itself, without an
    # event-loop turn (no task, no future: nothing to share).
    assert turns == ([] if inline else [1])
    await states.current(box, at_least=state.modseq)
    assert calls == 1  # ... unless the feed says the state is recent enough


async def test_views_share_the_uid_array(school) -> None:  # type: ignore[no-untyped-def]
    _, box = await _inbox(school, 4)
    state = await MailboxStates(school.mail_store.db).current(box)
    assert state is not None
    view = SelectedView.from_uids(box, "INBOX", 1, False, list(state.uids), state.modseq)
    assert view.uids is not state.uids
    adopt_uids(view, state)
    assert view.uids is state.uids
    shared = view.uids
    view.append_uids([99])
    assert list(shared) == list(state.uids) and view.uids is not shared  # never in place


async def test_group_committed_store_is_the_store_s_store(school) -> None:  # type: ignore[no-untyped-def]
    store = school.mail_store
    account, box = await _inbox(school, 6)
    states = MailboxStates(store.db)
    state = await states.current(box)
    assert state is not None
    store.add_flag_listener(states.apply_store)
    writer = store
    before_transactions = store.writes.transactions
    subscription = store.feed.subscribe(account)
    before = state.modseq
    results = await asyncio.gather(
        writer.store_flags(box, [1, 2], FlagMode.ADD, ["\\Flagged"]),
        writer.store_flags(box, [2, 3], FlagMode.ADD, ["\\Flagged", "Projekt"]),
        writer.store_flags(box, [1], FlagMode.ADD, ["\\Flagged"]),  # already: no-op
        writer.store_flags(box, [4], FlagMode.REPLACE, ["\\Seen"], before),
        writer.store_flags(box, [4], FlagMode.ADD, ["\\Draft"], before),  # 4 changed since
        return_exceptions=True)
    assert store.writes.transactions - before_transactions < 5  # shared commits
    first, second, noop, replaced, conditional = results
    assert [m.uid for m in first.updated] == [1, 2]
    assert [m.uid for m in second.updated] == [2, 3]
    assert second.highestmodseq == first.highestmodseq + 1  # own MODSEQ each
    assert noop.updated == [] and noop.highestmodseq == second.highestmodseq
    assert replaced.updated[0].flags == frozenset({"\\Seen"})
    assert conditional.updated == [] and conditional.modified == [4]
    snapshot = await store.select_snapshot(account, "INBOX")
    flags = {m.uid: m.flags for m in snapshot.messages}
    assert flags[2] == frozenset({"\\Flagged", "Projekt"}) and flags[4] == {"\\Seen"}
    # The shared state took the results without reading the store.
    assert _as_store(state) == [tuple(m) for m in snapshot.messages]
    assert max(c.highestmodseq for c in subscription.pending()) == replaced.highestmodseq

    with pytest.raises(InvalidFlag):
        await writer.store_flags(box, [1], FlagMode.ADD, ["\\Erfunden"])
    await store.create_mailbox(account, "Weg")
    gone = (await store.mailbox_status(account, "Weg")).mailbox.id
    await store.delete_mailbox(account, "Weg")
    outcome = await asyncio.gather(writer.store_flags(gone, [1], FlagMode.ADD, ["\\Seen"]),
                                   writer.store_flags(box, [5], FlagMode.ADD, ["\\Seen"]),
                                   return_exceptions=True)
    assert isinstance(outcome[0], MailboxNotFound)  # fails alone
    assert [m.uid for m in outcome[1].updated] == [5]


async def test_group_committed_expunge_goes_into_the_state(school) -> None:  # type: ignore[no-untyped-def]
    """RFC 9051 6.4.3, RFC 7162 3.2.10: an EXPUNGE committed by this server
    is applied to the shared state from its result (no read of the store),
    and the state then answers what the store answers."""
    store = school.mail_store
    account, box = await _inbox(school, 6)
    states = MailboxStates(store.db)
    store.add_expunge_listener(states.apply_expunge)
    state = await states.current(box)
    assert state is not None
    before = state.modseq
    await store.store_flags(box, [2, 5], FlagMode.ADD, ["\\Deleted"])
    state = await states.current(box)  # the STORE (no flag listener here): read
    assert state is not None
    reads = 0
    real = state.refresh

    async def counting(db):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return await real(db)

    state.refresh = counting  # type: ignore[method-assign]
    stored = state.modseq
    assert await store.expunge(box) == [2, 5]
    changed = await states.current(box, at_least=stored + 1)  # what the feed tells
    assert changed is state and reads == 0  # taken from the EXPUNGE's result
    snapshot = await store.select_snapshot(account, "INBOX")
    assert _as_store(state) == [tuple(m) for m in snapshot.messages]
    assert state.counters is not None and state.counters.highestmodseq == \
        snapshot.mailbox.highestmodseq
    ours, theirs = state.changes_since(before), await store.changes_since(box, before)
    assert ours is not None and ours.vanished == theirs.vanished == [2, 5]
    assert [m.uid for m in ours.changed] == [m.uid for m in theirs.changed]
    # Not directly after the cached state (a delivery came between): a refresh.
    await deliver(school, account, sample_message("neu"))
    await store.store_flags(box, [1], FlagMode.ADD, ["\\Deleted"])
    assert await store.expunge(box) == [1]
    await states.current(box)
    assert reads == 1 and 1 not in state.uids and 7 in state.uids

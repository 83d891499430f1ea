"""Entering and leaving the selected state, and waiting in it: SELECT,
EXAMINE (RFC 9051 6.3.2-6.3.3, CONDSTORE/QRESYNC RFC 7162 3.1.8 / 3.2.5),
CLOSE, UNSELECT (RFC 9051 6.4.1-6.4.2), CHECK (RFC 3501 6.4.1) and IDLE
(RFC 2177, RFC 9051 6.3.13)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from mailserver.imap.session.core import AUTH, SELECTED, State
from mailserver.imap.session.view import SelectedView
from mailserver.imap.wire import commands as c
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.errors import ParseError
from mailserver.imap.wire.framer import CommandUnit, FramingFailure
from mailserver.imap.wire.parser import parse_idle_done
from mailserver.imap.wire.sequence import SequenceSet

if TYPE_CHECKING:
    from mailserver.imap.session.core import ImapSession

async def select(s: ImapSession, cmd: c.Select) -> r.Tagged:
    """SELECT / EXAMINE: the untagged data of RFC 9051 6.3.2 (and RFC 3501
    6.3.1 RECENT/UNSEEN for IMAP4rev1 clients), then READ-WRITE/READ-ONLY."""
    if s.view is not None:
        if s.rev2 or s.qresync:
            s.send(r.Untagged("OK", "Previous mailbox closed", r.Code("CLOSED")))
        s.select(None)
    if cmd.qresync is not None and not s.qresync:
        return r.Tagged(cmd.tag, "BAD", "QRESYNC is not enabled")
    if cmd.condstore:
        s.condstore = True
    opened = await _open(s, cmd.mailbox, cmd.read_only)
    if opened is None:
        snapshot = await s.store.select_snapshot(s.account, cmd.mailbox)
        box = snapshot.mailbox
        opened = (SelectedView.from_uids(box.id, box.name, box.uidvalidity, cmd.read_only,
                                         (m.uid for m in snapshot.messages),
                                         box.highestmodseq),
                  box.uidnext, [m.flags for m in snapshot.messages])
        del snapshot
    view, uidnext, flags = opened
    distinct = set(flags)
    view.keyword_announcement(distinct)  # the keywords FLAGS below names
    flags_data, permanent_flags = view.flags_responses()
    s.send(flags_data, r.ExistsData(len(flags)))
    if s.rev2:
        s.send(r.ListData((), "/", view.name))
    else:
        await s.claim_recent(view, uidnext, report=False)
        s.send(r.RecentData(view.recent_count))
        unseen = {f for f in distinct if not any(x.lower() == "\\seen" for x in f)}
        first_unseen = next((i for i, f in enumerate(flags, 1) if f in unseen), None)
        if first_unseen is not None:
            s.send(r.Untagged("OK", "First unseen", r.NumberCode("UNSEEN", first_unseen)))
    s.send(permanent_flags,
           r.Untagged("OK", "UIDs valid", r.NumberCode("UIDVALIDITY", view.uidvalidity)),
           r.Untagged("OK", "Predicted next UID", r.NumberCode("UIDNEXT", uidnext)),
           r.Untagged("OK", "Highest", r.NumberCode("HIGHESTMODSEQ", view.modseq)))
    del flags, distinct
    if cmd.qresync is not None and cmd.qresync.uidvalidity == view.uidvalidity:
        await _qresync(s, view, cmd.qresync)
    s.select(view)
    mode = "READ-ONLY" if cmd.read_only else "READ-WRITE"
    return r.Tagged(cmd.tag, "OK", f"{'EXAMINE' if cmd.read_only else 'SELECT'} completed",
                    r.Code(mode))


async def _open(s: ImapSession, name: str, read_only: bool
                ) -> tuple[SelectedView, int, list[frozenset[str]]] | None:
    """The view, UIDNEXT and every message's flags from the shared mailbox
    state (refreshed after this command arrived; the view shares its UID
    array). None when there is no state to use or the name moved meanwhile:
    the caller then reads the store's snapshot (which also reports errors)."""
    states = s.services.states
    found = None if states is None else await states.by_client_name(s.account, name)
    if found is None:
        return None
    state, counters = found
    view = SelectedView(state.mailbox_id, counters.name, counters.uidvalidity, read_only,
                        state.uids, state.modseq)
    return view, counters.uidnext, list(state.flags)


async def _qresync(s: ImapSession, view: SelectedView, params: c.QresyncParams) -> None:
    """RFC 7162 3.2.5.2: what the client missed since its MODSEQ."""
    changes = await s.store.changes_since(view.mailbox_id, params.modseq)
    known = params.known_uids
    vanished = [uid for uid in changes.vanished
                if known is None or known.contains(uid, max(uid, 1))]
    if vanished:
        s.send(r.VanishedData(SequenceSet.from_numbers(vanished), earlier=True))
    for message in changes.changed:
        seq = view.seq_of(message.uid)
        if seq is not None:
            s.send(r.FetchData(seq, (r.UidItem(message.uid),
                                     r.FlagsItem(tuple(sorted(message.flags))),
                                     r.ModSeqItem(message.modseq))))


async def close(s: ImapSession, cmd: c.Close) -> r.Tagged:
    """RFC 9051 6.4.1: expunge \\Deleted silently (not when read-only)."""
    view = s.view
    assert view is not None
    if not view.read_only:
        await s.store.expunge(view.mailbox_id, None)
    s.select(None)
    return r.Tagged(cmd.tag, "OK", "CLOSE completed")


async def unselect(s: ImapSession, cmd: c.Unselect) -> r.Tagged:
    """RFC 3691 / RFC 9051 6.4.2."""
    s.select(None)
    return r.Tagged(cmd.tag, "OK", "UNSELECT completed")


async def check(s: ImapSession, cmd: c.Check) -> r.Tagged:
    """RFC 3501 6.4.1: every write is durable at commit; only the poll remains."""
    await s.poll(allow_expunge=True, force=True)
    return r.Tagged(cmd.tag, "OK", "CHECK completed")


async def idle(s: ImapSession, cmd: c.Idle) -> r.Tagged:
    """RFC 2177: wait on the change feed and the client at once; a commit by
    SMTP or another session wakes us within the feed's latency."""
    s.send(r.Continuation("idling"))
    if s.view is not None:
        await s.poll(allow_expunge=True, force=True)
    await s.channel.drain()
    event_task: asyncio.Future[Any] = asyncio.ensure_future(
        s.channel.next_event(s.services.idle_timeout))
    change_task: asyncio.Future[Any] | None = None
    try:
        while True:
            waiters: set[asyncio.Future[Any]] = {event_task}
            if s.subscription is not None:
                change_task = asyncio.ensure_future(s.subscription.wait())
                waiters.add(change_task)
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if change_task is not None:
                if change_task in done:
                    s.note_changes(change_task.result())
                    if s.view is not None:
                        await s.poll(allow_expunge=True)
                        await s.channel.drain()
                    if s.state is State.LOGOUT:
                        return r.Tagged(cmd.tag, "OK", "IDLE terminated")
                else:
                    change_task.cancel()
                change_task = None
            if event_task in done:
                return _end_idle(s, cmd, event_task.result())
    finally:
        for task in (event_task, change_task):
            if task is not None and not task.done():
                task.cancel()


def _end_idle(s: ImapSession, cmd: c.Idle, event: Any) -> r.Tagged:
    if event is None:
        s.send(r.Untagged("BYE", "Autologout; idle for too long"))
        s.state = State.LOGOUT
        return r.Tagged(cmd.tag, "OK", "IDLE terminated")
    if isinstance(event, FramingFailure):
        s.send(r.Untagged("BYE", event.text))
        s.state = State.LOGOUT
        return r.Tagged(cmd.tag, "OK", "IDLE terminated")
    if isinstance(event, CommandUnit):
        try:
            parse_idle_done(event)
            return r.Tagged(cmd.tag, "OK", "IDLE terminated")
        except ParseError:
            pass
    return r.Tagged(cmd.tag, "BAD", "Expected DONE")


async def compress(s: ImapSession, cmd: c.Compress) -> r.Tagged:
    """COMPRESS (RFC 4978) is not advertised."""
    return r.Tagged(cmd.tag, "BAD", "COMPRESS is not supported")


HANDLERS = {
    c.Select: (select, AUTH),
    c.Close: (close, SELECTED),
    c.Unselect: (unselect, SELECTED),
    c.Check: (check, SELECTED),
    c.Idle: (idle, AUTH),
    c.Compress: (compress, AUTH),
}

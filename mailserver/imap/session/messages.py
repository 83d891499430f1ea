"""Commands that change messages of the selected mailbox: STORE (RFC 9051
6.4.6, UNCHANGEDSINCE RFC 7162 3.1.3), COPY (6.4.7), MOVE (RFC 6851,
RFC 9051 6.4.8), EXPUNGE and UID EXPUNGE (6.4.3, RFC 4315 2.1), with
COPYUID (RFC 4315 3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailserver.imap.session.core import SELECTED
from mailserver.imap.wire import commands as c
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.sequence import SequenceSet
from mailserver.store.model import CopyResult

if TYPE_CHECKING:
    from mailserver.imap.session.core import ImapSession
    from mailserver.imap.session.view import SelectedView


def _read_only(tag: str) -> r.Tagged:
    return r.Tagged(tag, "NO", "Mailbox is read-only", r.Code("READ-ONLY"))


def _flag_order(flags: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(flags, key=lambda flag: (not flag.startswith("\\"), flag.lower())))


async def store(s: ImapSession, cmd: c.Store) -> r.Tagged:
    from mailserver.store.model import FlagMode

    view = s.view
    assert view is not None
    if view.read_only:
        return _read_only(cmd.tag)
    if not cmd.uid and view.out_of_range(cmd.sequence_set):
        return r.Tagged(cmd.tag, "BAD", "Message number out of range")
    if cmd.unchanged_since is not None:
        s.condstore = True
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid, saved=s.saved_uids)
    flags = tuple(f for f in cmd.flags if f.lower() != "\\recent")
    result = await s.services.store_flags(view.mailbox_id, uids, FlagMode(cmd.mode), flags,
                                          cmd.unchanged_since)
    reported: set[int] = set()
    for message in result.updated:
        view.note_own_change(message.uid, message.modseq)
        reported.add(message.uid)
        # RFC 7162 3.1.3: with UNCHANGEDSINCE the MODSEQ is sent even for .SILENT.
        if not cmd.silent or cmd.unchanged_since is not None:
            _send_flags(s, view, cmd, message.uid, frozenset(message.flags), message.modseq,
                        flags_too=not cmd.silent)
    if not cmd.silent:
        # Messages whose flags were already as asked still get their FLAGS
        # (RFC 9051 6.4.6: the server SHOULD send the new value of each).
        rest = [u for u in uids if u not in reported and u not in set(result.modified)]
        for meta in await s.store.fetch_messages(view.mailbox_id, rest) if rest else []:
            _send_flags(s, view, cmd, meta.uid, frozenset(meta.flags), meta.modseq,
                        flags_too=True)
    if result.modified:
        numbers = (result.modified if cmd.uid
                   else [n for n in map(view.seq_of, result.modified) if n is not None])
        return r.Tagged(cmd.tag, "OK", "Conditional STORE failed",
                        r.ModifiedCode(SequenceSet.from_numbers(numbers)))
    return r.Tagged(cmd.tag, "OK", "STORE completed")


def _send_flags(s: ImapSession, view: SelectedView, cmd: c.Store, uid: int,
                flags: frozenset[str], modseq: int, *, flags_too: bool) -> None:
    seq = view.seq_of(uid)
    if seq is None or uid in view.pending_expunge:
        return
    items: list[r.FetchValue] = []
    if cmd.uid:
        items.append(r.UidItem(uid))
    if flags_too:
        items.append(r.FlagsItem(_flag_order(flags)))
    if s.condstore:
        items.append(r.ModSeqItem(modseq))
    if items:
        s.send(r.FetchData(seq, tuple(items)))


async def _destination(s: ImapSession, name: str) -> int:
    """The id of this account's mailbox ``name``: looked up by account, so a
    session can never copy into another account's mailbox."""
    status = await s.store.mailbox_status(s.account, name)
    return int(status.mailbox.id)


def _copyuid(result: CopyResult) -> r.CopyUidCode | None:
    pairs = sorted(result.pairs)
    if not pairs:
        return None
    return r.CopyUidCode(result.uidvalidity,
                         SequenceSet.from_numbers(p[0] for p in pairs),
                         SequenceSet.from_numbers(p[1] for p in pairs))


async def copy(s: ImapSession, cmd: c.Copy) -> r.Tagged:
    view = s.view
    assert view is not None
    if not cmd.uid and view.out_of_range(cmd.sequence_set):
        return r.Tagged(cmd.tag, "BAD", "Message number out of range")
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid, saved=s.saved_uids)
    if not uids:
        return r.Tagged(cmd.tag, "OK", "Nothing to copy")
    dest = await _destination(s, cmd.mailbox)
    result = await s.store.copy(view.mailbox_id, uids, dest)
    return r.Tagged(cmd.tag, "OK", "COPY completed", _copyuid(result))


async def move(s: ImapSession, cmd: c.Move) -> r.Tagged:
    """RFC 6851 4.3: COPYUID comes in an untagged OK before the expunges."""
    view = s.view
    assert view is not None
    if view.read_only:
        return _read_only(cmd.tag)
    if not cmd.uid and view.out_of_range(cmd.sequence_set):
        return r.Tagged(cmd.tag, "BAD", "Message number out of range")
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid, saved=s.saved_uids)
    if not uids:
        return r.Tagged(cmd.tag, "OK", "Nothing to move")
    dest = await _destination(s, cmd.mailbox)
    result = await s.store.move(view.mailbox_id, uids, dest)
    code = _copyuid(result)
    if code is not None:
        s.send(r.Untagged("OK", "Moved", code))
    s.send(*view.remove_now([p[0] for p in result.pairs], qresync=s.qresync))
    return r.Tagged(cmd.tag, "OK", "MOVE completed")


async def expunge(s: ImapSession, cmd: c.Expunge) -> r.Tagged:
    view = s.view
    assert view is not None
    if view.read_only:
        return _read_only(cmd.tag)
    uids = None
    if cmd.uids is not None:
        uids = view.resolve(cmd.uids, uid=True, saved=s.saved_uids)
        if not uids:
            return r.Tagged(cmd.tag, "OK", "Nothing to expunge")
    gone = await s.store.expunge(view.mailbox_id, uids)
    s.send(*view.remove_now(gone, qresync=s.qresync))
    return r.Tagged(cmd.tag, "OK", "EXPUNGE completed")


HANDLERS = {
    c.Store: (store, SELECTED),
    c.Copy: (copy, SELECTED),
    c.Move: (move, SELECTED),
    c.Expunge: (expunge, SELECTED),
}

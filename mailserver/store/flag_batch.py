"""STOREs of one group commit in a fixed number of statements (RFC 9051
6.4.6, RFC 3501 6.4.5, CONDSTORE RFC 7162 3.1.3).

Each STORE is applied in arrival order, with its own MODSEQ when it changed
something (RFC 7162 3.1.1; messages changed together share it),
UNCHANGEDSINCE honoured, no-ops keep HIGHESTMODSEQ.  A STORE on a deleted
mailbox fails alone (``Failed``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailserver.store import flags as fl
from mailserver.store import queries as q
from mailserver.store.batcher import Failed
from mailserver.store.model import FlagMode, MailboxNotFound, MessageState, StoreResult
from mailserver.store.raw_sql import Dialect, Fetch, Many, Steps


@dataclass(frozen=True)
class FlagWork:
    """One STORE: flags already encoded (``flags.encode``), so an invalid
    flag is refused before it is queued."""

    mailbox_id: int
    uids: tuple[int, ...]
    mode: FlagMode
    given: tuple[int, tuple[str, ...]]
    unchanged_since: int | None


@dataclass(frozen=True)
class FlagDone:
    work: FlagWork
    account_id: int
    result: StoreResult


def apply_flags(dialect: Dialect, works: list[FlagWork]) -> Steps[list[FlagDone | Failed]]:
    """Lock the mailboxes (id order, so PostgreSQL writers never deadlock
    on them), read the touched messages, apply each STORE in arrival order
    in memory, then write every changed message once and each mailbox's
    new HIGHESTMODSEQ."""
    ids = sorted({work.mailbox_id for work in works})
    where, values = dialect.where_in(ids)
    boxes = {row[0]: (int(row[1]), int(row[2])) for row in (yield Fetch(
        f"SELECT id, account_id, highestmodseq FROM mailboxes WHERE id {where} "
        f"ORDER BY id{dialect.for_update}", values))}
    current: dict[tuple[int, int], tuple[int, str, int]] = {}
    for mailbox_id in boxes:
        uids = sorted({uid for work in works if work.mailbox_id == mailbox_id
                       for uid in work.uids})
        for chunk in q.chunks(uids):
            where, values = dialect.where_in(chunk)
            for uid, bits, keywords, modseq in (yield Fetch(
                    "SELECT uid, system_flags, keywords, modseq FROM messages "
                    f"WHERE mailbox_id = ? AND uid {where}", [mailbox_id, *values])):
                current[(mailbox_id, uid)] = (bits, keywords, modseq)
    highest = {mailbox_id: modseq for mailbox_id, (_, modseq) in boxes.items()}
    written: dict[tuple[int, int], tuple[int, str, int]] = {}
    out: list[FlagDone | Failed] = []
    for work in works:
        box = boxes.get(work.mailbox_id)
        if box is None:
            out.append(Failed(MailboxNotFound(f"no mailbox {work.mailbox_id}")))
            continue
        out.append(FlagDone(work, box[0], _store_one(work, current, highest, written)))
    if written:
        yield Many("UPDATE messages SET system_flags = ?, keywords = ?, modseq = ? "
                   "WHERE mailbox_id = ? AND uid = ?",
                   [(bits, keywords, modseq, mailbox_id, uid) for (mailbox_id, uid),
                    (bits, keywords, modseq) in sorted(written.items())])
        yield Many("UPDATE mailboxes SET highestmodseq = ? WHERE id = ?",
                   [(highest[mailbox_id], mailbox_id)
                    for mailbox_id in sorted({key[0] for key in written})])
    return out


def _store_one(work: FlagWork, current: dict[tuple[int, int], tuple[int, str, int]],
               highest: dict[int, int],
               written: dict[tuple[int, int], tuple[int, str, int]]) -> StoreResult:
    """One STORE on the in-memory rows (``current`` is updated)."""
    mailbox_id = work.mailbox_id
    modified: list[int] = []
    changed: list[tuple[int, int, str]] = []
    for uid in sorted(set(work.uids)):
        row = current.get((mailbox_id, uid))
        if row is None:
            continue  # expunged meanwhile: nothing to change
        bits, keywords, modseq = row
        if work.unchanged_since is not None and modseq > work.unchanged_since:
            modified.append(uid)
            continue
        new_bits, new_keywords = fl.apply(work.mode, bits, keywords, *work.given)
        if not fl.same(bits, keywords, new_bits, new_keywords):
            changed.append((uid, new_bits, new_keywords))
    if not changed:
        return StoreResult([], modified, highest[mailbox_id])
    modseq = highest[mailbox_id] = highest[mailbox_id] + 1
    updated = []
    for uid, bits, keywords in changed:
        current[(mailbox_id, uid)] = written[(mailbox_id, uid)] = (bits, keywords, modseq)
        updated.append(MessageState(uid, fl.decode(bits, keywords), modseq))
    return StoreResult(updated, modified, modseq)

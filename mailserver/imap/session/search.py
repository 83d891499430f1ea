"""SEARCH / UID SEARCH (RFC 9051 6.4.4, ESEARCH RFC 4731, SEARCHRES
RFC 5182, MODSEQ RFC 7162 3.1.5): the session side; matching is
``mailserver.imap.searching``."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from mailserver.imap import searching
from mailserver.imap.session.core import SELECTED
from mailserver.imap.session.fetch import RECORD_CHUNK, chunks, record_of
from mailserver.imap.wire import commands as c
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.search import (
    SearchAnd,
    SearchFlagKey,
    SearchKey,
    SearchKeyword,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSequence,
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

if TYPE_CHECKING:
    from mailserver.imap.session.core import ImapSession


def _has_modseq(key: SearchKey) -> bool:
    match key:
        case SearchModSeq():
            return True
        case SearchNot(inner):
            return _has_modseq(inner)
        case SearchOr(left, right):
            return _has_modseq(left) or _has_modseq(right)
        case SearchAnd(keys):
            return any(_has_modseq(k) for k in keys)
    return False


def _state_only(key: SearchKey) -> bool:
    """Whether ``key`` needs nothing but UID, number, flags and MODSEQ (then
    the mailbox snapshot answers it without a record per message)."""
    match key:
        case SearchFlagKey() | SearchKeyword() | SearchSequence() | SearchModSeq():
            return True
        case SearchNot(inner):
            return _state_only(inner)
        case SearchOr(left, right):
            return _state_only(left) and _state_only(right)
        case SearchAnd(keys):
            return all(_state_only(k) for k in keys)
    return False


async def _candidates(s: ImapSession, cmd: c.Search, with_body: bool) -> Any:
    """The messages to test, as records: from one snapshot query when the
    key allows it, else from the store's records in chunks."""
    view = s.view
    assert view is not None
    if _state_only(cmd.key):
        snapshot = await s.store.select_snapshot(s.account_id, view.name)
        if snapshot.mailbox.id == view.mailbox_id:
            for state in snapshot.messages:
                seq = view.seq_of(state.uid)
                if seq is not None:
                    yield searching.MessageRecord(seq, state.uid, frozenset(state.flags),
                                                  _EPOCH, 0, state.modseq), None
            return
    for chunk in chunks(list(view.uids), 64 if with_body else RECORD_CHUNK):
        for meta in await s.store.fetch_messages(view.mailbox_id, chunk):
            seq = view.seq_of(meta.uid)
            if seq is None:
                continue
            body = await s.store.read_blob(meta.blob_id) if with_body else None
            yield record_of(seq, meta), body


async def search(s: ImapSession, cmd: c.Search) -> r.Tagged:
    view = s.view
    assert view is not None
    with_modseq = _has_modseq(cmd.key)
    if with_modseq:
        s.condstore = True
    with_body = searching.needs_body(cmd.key)
    max_seq, max_uid = view.exists, view.largest_uid
    saved = frozenset(s.saved_uids)
    found: list[tuple[int, int, int]] = []  # (seq, uid, modseq)
    async for record, body in _candidates(s, cmd, with_body):
        ctx = searching.SearchContext(record, max_seq, max_uid, saved,
                                      load_body=None if body is None else (lambda b=body: b),
                                      cache=s.cache if with_body else None)
        if searching.matches(cmd.key, ctx):
            found.append((record.seq, record.uid, record.modseq))
    numbers = [uid if cmd.uid else seq for seq, uid, _ in found]
    modseq = max((m for _, _, m in found), default=None) if with_modseq else None
    if cmd.return_options is not None or s.rev2:
        outcome = searching.esearch_result(numbers, cmd.return_options or (), tag=cmd.tag,
                                           uid=cmd.uid, modseq=modseq)
        if outcome.saved is not None:
            uid_of = {seq: uid for seq, uid, _ in found}
            s.saved_uids = tuple(n if cmd.uid else uid_of[n] for n in outcome.saved)
        if outcome.response is not None:
            s.send(outcome.response)
    else:
        s.send(r.SearchData(tuple(numbers), modseq))
    return r.Tagged(cmd.tag, "OK", "SEARCH completed")


HANDLERS = {c.Search: (search, SELECTED)}

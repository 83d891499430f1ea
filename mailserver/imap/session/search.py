"""SEARCH / UID SEARCH (RFC 9051 6.4.4, ESEARCH RFC 4731, SEARCHRES
RFC 5182, MODSEQ RFC 7162 3.1.5): the session side; matching is
``mailserver.imap.searching``."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from itertools import compress
from typing import TYPE_CHECKING, Any

from mailserver.imap import searching
from mailserver.imap.session.core import SELECTED
from mailserver.imap.session.fetch import RECORD_CHUNK, chunks, record_of
from mailserver.imap.wire import commands as c
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.search import (
    SearchFlagKey,
    SearchKey,
    SearchKeyword,
    SearchModSeq,
    SearchSequence,
    all_leaves,
    any_leaf,
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

if TYPE_CHECKING:
    from mailserver.imap.session.core import ImapSession


def _has_modseq(key: SearchKey) -> bool:
    return any_leaf(key, lambda leaf: isinstance(leaf, SearchModSeq))


def _state_only(key: SearchKey) -> bool:
    """Whether ``key`` needs nothing but UID, number, flags and MODSEQ (then
    the mailbox snapshot answers it without a record per message)."""
    return all_leaves(key, lambda leaf: isinstance(
        leaf, SearchFlagKey | SearchKeyword | SearchSequence | SearchModSeq))


def _uses_recent(key: SearchKey) -> bool:
    """RECENT, NEW and OLD depend on the session's \\Recent set, not on flags."""
    return any_leaf(key, lambda leaf: isinstance(leaf, SearchFlagKey)
                    and leaf.name in ("RECENT", "NEW", "OLD"))


def _flags_only(key: SearchKey) -> bool:
    """Whether ``key`` depends on nothing but the flags (then it is decided
    once per distinct flag set, not once per message)."""
    return all_leaves(key, lambda leaf: isinstance(leaf, SearchFlagKey | SearchKeyword))


def _search_state(s: ImapSession, cmd: c.Search, state: Any) -> list[tuple[int, int, int]]:
    """(seq, uid, modseq) of the messages of the shared mailbox state that
    match a state-only key and are in the session's view."""
    view = s.view
    assert view is not None
    max_seq, max_uid = view.exists, view.largest_uid
    saved = frozenset(s.saved_uids)
    uids, flags, modseqs = state.uids, state.flags, state.modseqs
    shared = view.uids is uids  # then a message's number is its index + 1
    seq_of = view.seq_of
    found: list[tuple[int, int, int]] = []
    recent = view.recent if not s.rev2 else set()
    if _flags_only(cmd.key) and not (recent and _uses_recent(cmd.key)):
        # Decide once per distinct flag set, then pick the indices at C speed.
        matching = set()
        for message_flags in set(flags):
            record = searching.MessageRecord(1, 1, message_flags, _EPOCH, 0, 0)
            if searching.matches(cmd.key, searching.SearchContext(record, max_seq, max_uid,
                                                                  saved)):
                matching.add(message_flags)
        for index in compress(range(len(flags)), map(matching.__contains__, flags)):
            uid = uids[index]
            seq = index + 1 if shared else seq_of(uid)
            if seq is not None:
                found.append((seq, uid, modseqs[index]))
        return found
    for index, uid in enumerate(uids):
        seq = index + 1 if shared else seq_of(uid)
        if seq is None:
            continue
        record = searching.MessageRecord(seq, uid, flags[index], _EPOCH, 0, modseqs[index])
        if searching.matches(cmd.key, searching.SearchContext(record, max_seq, max_uid,
                                                              saved, recent=uid in recent)):
            found.append((seq, uid, modseqs[index]))
    return found


async def _candidates(s: ImapSession, cmd: c.Search, with_body: bool) -> Any:
    """The messages to test, as records: from one snapshot query when the
    key allows it, else from the store's records in chunks."""
    view = s.view
    assert view is not None
    if _state_only(cmd.key):
        snapshot = await s.store.select_snapshot(s.account, view.name)
        if snapshot.mailbox.id == view.mailbox_id:
            for state in snapshot.messages:
                seq = view.seq_of(state.uid)
                if seq is not None:
                    yield searching.MessageRecord(seq, state.uid, frozenset(state.flags),
                                                  _EPOCH, 0, state.modseq), None
            return
    from mailserver.imap.session.fetch import blob_of, load_bodies, load_records

    for chunk in chunks(list(view.uids), 64 if with_body else RECORD_CHUNK):
        metas = await load_records(s, view.mailbox_id, chunk)
        bodies = await load_bodies(s, [meta.blob_id for meta in metas]) if with_body else {}
        for meta in metas:
            seq = view.seq_of(meta.uid)
            if seq is None:
                continue
            yield record_of(seq, meta), blob_of(bodies, meta.blob_id) if with_body else None


def _loader(body: bytes) -> Callable[[], bytes]:
    return lambda: body


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
    states = s.services.states
    state = None
    if states is not None and _state_only(cmd.key):
        state = await states.current(view.mailbox_id, at_least=s.known_modseq())
    if state is not None:
        found = _search_state(s, cmd, state)  # no await inside: one consistent state
    else:
        async for record, body in _candidates(s, cmd, with_body):
            ctx = searching.SearchContext(record, max_seq, max_uid, saved,
                                          load_body=None if body is None
                                          else _loader(body),
                                          recent=not s.rev2 and record.uid in view.recent,
                                          cache=s.cache if with_body else None)
            if searching.matches(cmd.key, ctx):
                found.append((record.seq, record.uid, record.modseq))
    numbers = [uid if cmd.uid else seq for seq, uid, _ in found]
    modseq = max((m for _, _, m in found), default=None) if with_modseq else None
    if cmd.return_options is not None or s.rev2:
        options = {option.upper() for option in cmd.return_options or ()} - {"SAVE"}
        if with_modseq and found and options and options <= {"MIN", "MAX"}:
            # RFC 4731 3.2: with only MIN / MAX, MODSEQ is the highest
            # mod-sequence of the messages returned, not of all found.
            ends = ({found[0]} if "MIN" in options else set()) | (
                {found[-1]} if "MAX" in options else set())
            modseq = max(m for _, _, m in ends)
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


HANDLERS: dict[type, Any] = {c.Search: (search, SELECTED)}

"""FETCH / UID FETCH (RFC 9051 6.4.5, 6.4.9; CONDSTORE CHANGEDSINCE RFC 7162
3.1.4; QRESYNC VANISHED RFC 7162 3.2.6): the session side.  The items are
computed by ``mailserver.imap.fetching``; here we load records and bodies
in chunks, set ``\\Seen`` for non-PEEK body fetches, and stream the
responses with drains in between (a 20 MB body is sent without holding
more than that one message).

Per chunk the database sees at most one statement per kind of data: the
records come from the shared mailbox state (refreshed after the command
arrived; ``mailserver.imap.mailbox_states``), bodies from one ``IN`` query
or the service's body cache, and when only header fields are asked
(``fetching.needs_only_header``) only header blocks are read, from the
service's header cache or as a prefix of each body."""

from __future__ import annotations

import asyncio
from array import array
from typing import TYPE_CHECKING, Any

from mailserver.imap import fetching
from mailserver.imap.session.core import SELECTED
from mailserver.imap.wire import commands as c
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.fetch_items import FetchItem
from mailserver.imap.wire.sequence import SequenceSet

if TYPE_CHECKING:
    from mailserver.imap.session.core import ImapSession

# Records per store round trip: many when only flags are asked, few when
# bodies are loaded (bounds the memory one FETCH holds).
RECORD_CHUNK = 2000
BODY_CHUNK = 16
HEADER_CHUNK = 500
# Bodies above this are parsed in a worker thread, off the event loop.
THREAD_THRESHOLD = 256 * 1024
# FETCH of only these items for many messages takes the fast path below.
_STATE_ITEMS = frozenset({FetchItem("UID"), FetchItem("FLAGS"), FetchItem("MODSEQ")})
FAST_PATH_MINIMUM = 500
RECENT = frozenset({"\\Recent"})


class _Everything:
    """A set that holds every UID (FETCH 1:* of the whole view)."""

    def __contains__(self, uid: object) -> bool:
        return True


_EVERYTHING = _Everything()


def chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def record_of(seq: int, meta: Any) -> fetching.MessageRecord:
    return fetching.MessageRecord(seq, meta.uid, frozenset(meta.flags), meta.internal_date,
                                  meta.size, meta.modseq, meta.blob_id)


async def fetch(s: ImapSession, cmd: c.Fetch) -> r.Tagged:
    view = s.view
    assert view is not None
    if not cmd.uid and view.out_of_range(cmd.sequence_set):
        return r.Tagged(cmd.tag, "BAD", "Message number out of range")
    items = cmd.attributes
    if cmd.changed_since is not None or FetchItem("MODSEQ") in items:
        s.condstore = True  # RFC 7162 3.1: CONDSTORE enabling
        if FetchItem("MODSEQ") not in items:
            items = (*items, FetchItem("MODSEQ"))
    if cmd.vanished:
        if not s.qresync:
            return r.Tagged(cmd.tag, "BAD", "VANISHED needs ENABLE QRESYNC")
        await _send_vanished(s, cmd)
    uids = view.resolve(cmd.sequence_set, uid=cmd.uid, saved=s.saved_uids)
    if (set(items) <= _STATE_ITEMS
            and (len(uids) >= FAST_PATH_MINIMUM or s.services.states is not None)
            and await _fetch_states(s, cmd, items, uids)):
        return r.Tagged(cmd.tag, "OK", "FETCH completed")
    with_body = fetching.needs_body(items)
    header_only = with_body and fetching.needs_only_header(items)
    size = HEADER_CHUNK if header_only else BODY_CHUNK if with_body else RECORD_CHUNK
    for chunk in chunks(uids, size):
        metas = await load_records(s, view.mailbox_id, chunk)
        wanted = []
        for meta in metas:
            if cmd.changed_since is not None and meta.modseq <= cmd.changed_since:
                continue
            seq = view.seq_of(meta.uid)
            if seq is not None:
                wanted.append((seq, meta))
        results: list[tuple[int, int, fetching.FetchResult]] = []
        if header_only:
            headers = await _headers(s, [meta.blob_id for _, meta in wanted])
            for seq, meta in wanted:
                results.append((seq, meta.uid, fetching.fetch_response_items(
                    items, record_of(seq, meta), None, uid_fetch=cmd.uid, rev2=s.rev2,
                    read_only=view.read_only, header=blob_of(headers, meta.blob_id),
                    items_cache=s.services.mime_items)))
        else:
            bodies = await load_bodies(s, [meta.blob_id for _, meta in wanted]) if with_body \
                else {}
            for seq, meta in wanted:
                body = blob_of(bodies, meta.blob_id) if with_body else None
                results.append((seq, meta.uid, await _items(s, items, record_of(seq, meta),
                                                            body, cmd.uid)))
        await _set_seen(s, results)
        for seq, _, result in results:
            s.send(r.FetchData(seq, result.items))
        await s.channel.drain()
    return r.Tagged(cmd.tag, "OK", "FETCH completed")


async def load_records(s: ImapSession, mailbox_id: int, uids: list[int]) -> list[Any]:
    """The records of a chunk (what ``MailStore.fetch_messages`` returns):
    from the shared mailbox state, as recent as every commit the session
    knows of (``ImapSession.known_modseq``)."""
    states = s.services.states
    if states is None:
        return list(await s.store.fetch_messages(mailbox_id, uids))
    state = await states.current(mailbox_id, at_least=s.known_modseq())
    if state is None:
        return list(await s.store.fetch_messages(mailbox_id, uids))
    return await state.metas(s.store.db, uids)


async def _headers(s: ImapSession, blob_ids: list[str]) -> dict[str, bytes]:
    """Header blocks of a chunk: from the server-wide cache, the rest in one
    statement reading only a prefix of each body."""
    cache = s.services.headers
    if cache is not None:
        return dict(await cache.get_many(s.store.db, blob_ids))
    from mailserver.store.bulk_reads import split_headers

    return split_headers(await load_bodies(s, blob_ids))


async def load_bodies(s: ImapSession, blob_ids: list[str]) -> dict[str, bytes]:
    """The bodies of a chunk in one statement."""
    if s.services.states is None:
        return {blob_id: await s.store.read_blob(blob_id) for blob_id in dict.fromkeys(blob_ids)}
    if s.services.bodies is not None:
        return dict(await s.services.bodies.get_many(s.store.db, blob_ids))
    from mailserver.store.bulk_reads import read_blobs

    return await read_blobs(s.store.db, blob_ids)


def blob_of(found: dict[str, bytes], blob_id: str) -> bytes:
    data = found.get(blob_id)
    if data is None:
        from mailserver.store.model import StoreError

        raise StoreError(f"no blob {blob_id}")
    return data


async def _fetch_states(s: ImapSession, cmd: c.Fetch, items: tuple[Any, ...],
                        uids: list[int]) -> bool:
    """``FETCH 1:* (UID FLAGS)``, the first thing a client does on a big
    mailbox, and any other FETCH of only UID, FLAGS and MODSEQ: take the
    shared mailbox state when there is one, else read (uid, flags, modseq)
    for the whole mailbox in one snapshot query (the SELECT path, no
    per-message records), and write the responses
    as bytes directly, with each distinct flag set rendered once.  Returns
    False (use the general path) if the mailbox was renamed meanwhile."""
    view = s.view
    assert view is not None
    states = s.services.states
    state = None if states is None else await states.current(view.mailbox_id,
                                                             at_least=s.known_modseq())
    everything = False  # the view shares the state's UIDs and all are wanted
    if state is not None and len(uids) * 4 < len(state):
        # A few messages of a big mailbox: look each up.
        picked = [(uid, index) for uid in uids
                  if (index := state.index(uid)) is not None]
        messages: Any = [(uid, state.flags[index], state.modseqs[index])
                         for uid, index in picked]
    elif state is not None:
        # Copies (C speed): the state changes while we wait for the client.
        everything = view.uids is state.uids and len(uids) == len(state.uids)
        messages = zip(state.uids, list(state.flags), array("Q", state.modseqs), strict=True)
    else:
        snapshot = await s.store.select_snapshot(s.account, view.name)
        if snapshot.mailbox.id != view.mailbox_id:
            return False
        messages = snapshot.messages
    wanted: Any = _EVERYTHING if everything else set(uids)
    uid_item = FetchItem("UID") in items or cmd.uid
    flags_item = FetchItem("FLAGS") in items
    modseq_item = FetchItem("MODSEQ") in items
    if flags_item:
        messages = list(messages)
        s.send(*view.keyword_announcement({flags for _, flags, _ in messages}))
    rendered: dict[frozenset[str], bytes] = {}
    out: list[bytes] = []
    seq_of = view.seq_of
    recent = view.recent if not s.rev2 else None
    changed_since = cmd.changed_since
    for index, (uid, message_flags, modseq) in enumerate(messages, 1):
        if uid not in wanted or (changed_since is not None and modseq <= changed_since):
            continue
        # With the view's UID array the state's own, message n is at n.
        seq = index if everything else seq_of(uid)
        if seq is None:
            continue
        if recent and uid in recent:
            message_flags = message_flags | RECENT  # session state (RFC 3501 2.3.2)
        parts = []
        if uid_item:
            parts.append(b"UID %d" % uid)
        if flags_item:
            flags = rendered.get(message_flags)
            if flags is None:
                flags = rendered[message_flags] = b"FLAGS (" + " ".join(
                    sorted(message_flags, key=lambda f: (not f.startswith("\\"), f.lower()))
                ).encode() + b")"
            parts.append(flags)
        if modseq_item:
            parts.append(b"MODSEQ (%d)" % modseq)
        out.append(b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts)))
        if len(out) >= 1000:
            s.channel.write(b"".join(out))
            out.clear()
            await s.channel.drain()
    s.channel.write(b"".join(out))
    return True


async def _items(s: ImapSession, items: tuple[Any, ...], record: fetching.MessageRecord,
                 body: bytes | None, uid: bool) -> fetching.FetchResult:
    read_only = s.view is not None and s.view.read_only
    if body is not None and len(body) > THREAD_THRESHOLD:
        return await asyncio.to_thread(fetching.fetch_response_items, items, record, body,
                                       uid_fetch=uid, rev2=s.rev2, read_only=read_only,
                                       cache=None, items_cache=s.services.mime_items)
    return fetching.fetch_response_items(items, record, body, uid_fetch=uid, rev2=s.rev2,
                                         read_only=read_only, cache=s.cache,
                                         items_cache=s.services.mime_items)


async def _set_seen(s: ImapSession, results: list[tuple[int, int, fetching.FetchResult]]
                    ) -> None:
    """RFC 3501 6.4.5: a non-PEEK body fetch sets \\Seen; the FLAGS item of
    the same response already shows it (the fetching module adds it)."""
    view = s.view
    assert view is not None
    seen = [uid for _, uid, result in results if result.sets_seen]
    if not seen:
        return
    from mailserver.store.model import FlagMode

    stored = await s.services.store_flags(view.mailbox_id, seen, FlagMode.ADD, ("\\Seen",),
                                          None)
    modseqs = {m.uid: m.modseq for m in stored.updated}
    for index, (seq, uid, result) in enumerate(results):
        if uid in modseqs:
            view.note_own_change(uid, modseqs[uid])
            if s.condstore:
                results[index] = (seq, uid, result.with_modseq(modseqs[uid]))


async def _send_vanished(s: ImapSession, cmd: c.Fetch) -> None:
    """UID FETCH ... (CHANGEDSINCE m VANISHED): UIDs in the set expunged
    since m, as ``VANISHED (EARLIER)`` (RFC 7162 3.2.6)."""
    view = s.view
    assert view is not None and cmd.changed_since is not None
    changes = await s.store.changes_since(view.mailbox_id, cmd.changed_since)
    largest = max([view.largest_uid, *changes.vanished, 1])
    gone = [uid for uid in changes.vanished if cmd.sequence_set.contains(uid, largest)]
    if gone:
        s.send(r.VanishedData(SequenceSet.from_numbers(gone), earlier=True))


HANDLERS: dict[type, Any] = {c.Fetch: (fetch, SELECTED)}

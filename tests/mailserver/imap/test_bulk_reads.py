"""Batched reads for IMAP (mailserver.store.bulk_reads) against the store's
own answers, on the test database's backend, and the header-only FETCH path
(RFC 9051 6.4.5 HEADER, HEADER.FIELDS, ENVELOPE) against the whole-message
path."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from mailserver.imap.fetching import fetch_response_items, needs_only_header
from mailserver.imap.mime.entity import split_header
from mailserver.store import bulk_reads
from mailserver.store.model import FlagMode
from tests.mailserver.imap.session.helpers import deliver, make_account, sample_message
from tests.mailserver.imap.test_fetching import NAMES, attributes, message, record

_LINES = st.lists(st.sampled_from([b"A: b\r\n", b"\r\n", b"\n", b"X: y\n", b" folded\r\n",
                                   b"body", b"\r", b"Subject: \xe4\r\n"]), max_size=12)


@given(_LINES, st.integers(0, 80))
def test_header_of_prefix_agrees_with_split_header(lines: list[bytes], cut: int) -> None:
    raw = b"".join(lines)
    expected = split_header(raw)[0]
    assert bulk_reads.header_of_prefix(raw, complete=True) == expected
    found = bulk_reads.header_of_prefix(raw[:cut], complete=cut >= len(raw))
    assert found is None or found == expected  # a short prefix may only say "don't know"


def test_header_only_items_equal_whole_message_items() -> None:
    for text in ("(UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])",
                 "(ENVELOPE RFC822.SIZE BODY[HEADER.FIELDS.NOT (To)]<0.20>)",
                 "(RFC822.HEADER BODY.PEEK[HEADER] INTERNALDATE)", "(BODY[HEADER])"):
        items = attributes(text)
        assert needs_only_header(items)
        for name in NAMES:
            raw = message(name)
            whole = fetch_response_items(items, record(raw), raw)
            alone = fetch_response_items(items, record(raw), None,
                                         header=split_header(raw)[0])
            assert alone == whole, (text, name)
    for text in ("(BODYSTRUCTURE)", "(BODY.PEEK[1.HEADER])", "(BODY[TEXT])", "(RFC822)",
                 "(BINARY.PEEK[1])"):
        assert not needs_only_header(attributes(text))


async def test_reads_match_the_store(school) -> None:  # type: ignore[no-untyped-def]
    store = school.mail_store
    account = await make_account(school)
    bodies = [sample_message(f"Nr {i}", body="x" * (i * 7000) + "\r\n") for i in range(4)]
    for body in bodies:
        await deliver(school, account, body)
    box = (await store.mailbox_status(account, "INBOX")).mailbox
    await store.store_flags(box.id, [2], FlagMode.ADD, ["\\Flagged", "Projekt"])
    db = store.db

    metas = await bulk_reads.fetch_metas(db, box.id, [4, 1, 2, 99])
    assert metas == await store.fetch_messages(box.id, [1, 2, 4])
    ids = [hashlib.sha256(b).hexdigest() for b in bodies]
    assert await bulk_reads.read_blobs(db, [*ids, "0" * 64]) == dict(zip(ids, bodies,
                                                                          strict=True))
    # A prefix shorter than the header falls back to the whole body.
    for prefix in (16, bulk_reads.HEADER_PREFIX):
        headers = await bulk_reads.read_headers(db, ids, prefix=prefix)
        assert headers == {i: split_header(b)[0] for i, b in zip(ids, bodies, strict=True)}

    row = await bulk_reads.mailbox_by_name(db, account, "INBOX")
    assert row is not None and row.id == box.id
    assert await bulk_reads.mailbox_by_name(db, account, "Nirgendwo") is None

    before = (await store.mailbox_status(account, "INBOX")).mailbox.highestmodseq
    await store.store_flags(box.id, [3], FlagMode.ADD, ["\\Seen"])
    await store.store_flags(box.id, [1, 2, 3], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(box.id, [1])
    delta = await bulk_reads.mailbox_delta(db, box.id, before)
    changes = await store.changes_since(box.id, before)
    assert [(uid, flags, modseq) for uid, flags, modseq in delta.changed] == [
        (m.uid, m.flags, m.modseq) for m in changes.changed]
    assert [uid for uid, _ in delta.vanished] == changes.vanished == [1]
    assert delta.mailbox is not None and delta.mailbox.highestmodseq == changes.highestmodseq
    full = await bulk_reads.mailbox_delta(db, box.id, None)
    snapshot = await store.select_snapshot(account, "INBOX")
    assert [(u, f, m) for u, f, m in full.changed] == [tuple(m) for m in snapshot.messages]
    assert full.vanished == []
    assert (await bulk_reads.mailbox_delta(db, 10_000, None)).mailbox is None


async def test_caches_are_bounded_and_read_once(school) -> None:  # type: ignore[no-untyped-def]
    account = await make_account(school)
    body = sample_message("Einmal")
    await deliver(school, account, body)
    blob_id = hashlib.sha256(body).hexdigest()
    cache = bulk_reads.HeaderCache(max_bytes=1000)
    assert await cache.get_many(school.mail_store.db, [blob_id, blob_id]) == {
        blob_id: split_header(body)[0]}
    assert (cache.misses, cache.hits) == (1, 0)
    await cache.get_many(school.mail_store.db, [blob_id])
    assert cache.hits == 1
    for n in range(20):
        cache.put(f"k{n}", b"x" * 100)
    assert len(cache) <= 10
    bodies = bulk_reads.BodyCache(max_bytes=10_000)
    assert await bodies.get_many(school.mail_store.db, [blob_id]) == {blob_id: body}

"""Folder pages and text search of the store (both backends)."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from directory.db import Database
from mailserver.store import MailboxNotFound, MailStore
from mailserver.store.search import SearchQuery, fold, index_row
from tests.mailserver.store.conftest import make_account


def mail(sender: str, to: str, subject: str, body: str, date: str = "") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = date or "Fri, 04 Dec 2026 10:00:00 +0100"
    message.set_content(body)
    return message.as_bytes()


async def test_latest_pages_newest_first(store: MailStore, db: Database) -> None:
    account = await make_account(db, "teacher")
    for n in range(7):
        await store.append(account, "INBOX", mail("a@x", "b@x", f"Nr {n}", "text"))
    page = await store.latest(account, "INBOX", 0, 3)
    assert page.total == 7 and [m.uid for m in page.messages] == [7, 6, 5]
    page = await store.latest(account, "INBOX", 6, 3)
    assert [m.uid for m in page.messages] == [1]
    with pytest.raises(MailboxNotFound):
        await store.latest(account, "Nope", 0, 3)
    # With gaps (expunged UIDs) every page, also at an offset that is no page
    # start, is what walking the UIDs newest first gives.
    from mailserver.store import FlagMode

    inbox = (await store.mailbox_status(account, "INBOX")).mailbox.id
    await store.store_flags(inbox, [2, 5], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox, [2, 5])
    await store.append(account, "INBOX", mail("a@x", "b@x", "Nr 7", "text"))
    uids = [8, 7, 6, 4, 3, 1]
    for size in (1, 2, 3, 4):
        for offset in range(0, 8):
            page = await store.latest(account, "INBOX", offset, size)
            assert page.total == 6
            assert [m.uid for m in page.messages] == uids[offset:offset + size], (offset, size)


async def test_folder_counts_follow_every_change_also_from_another_process(
        store: MailStore, db: Database, feed: object) -> None:
    """Totals and unseen counts are kept while a mailbox's (uidvalidity, uidnext,
    highestmodseq) stays; every change moves that key, also one made by another
    process's store (here: a second MailStore on the same database)."""
    from mailserver.changes import ChangeFeed
    from mailserver.store import FlagMode
    from tests.mailserver.store.conftest import QUOTAS

    other = MailStore(db, QUOTAS, ChangeFeed())
    account = await make_account(db, "teacher")
    await store.ensure_default_mailboxes(account)
    for n in range(5):
        await store.append(account, "INBOX", mail("a@x", "b@x", f"Nr {n}", "text"))

    async def looked() -> tuple[int, int, int]:
        unseen = dict(await store.unseen_counts(account))
        page = await store.latest(account, "INBOX", 0, 50)
        return unseen["INBOX"], page.total, len(page.messages)

    assert await looked() == (5, 5, 5)
    assert await looked() == (5, 5, 5)  # from what was kept
    inbox = (await store.mailbox_status(account, "INBOX")).mailbox.id
    await other.store_flags(inbox, [1, 2], FlagMode.ADD, ["\\Seen"])
    assert await looked() == (3, 5, 5)
    await other.append(account, "INBOX", mail("a@x", "b@x", "Neu", "text"))
    assert await looked() == (4, 6, 6)
    await other.store_flags(inbox, [3], FlagMode.ADD, ["\\Deleted"])
    await other.expunge(inbox, [3])
    assert await looked() == (3, 5, 5)
    await other.move(inbox, [4], (await store.mailbox_status(account, "Trash")).mailbox.id)
    assert await looked() == (2, 4, 4)
    assert dict(await store.unseen_counts(account))["Trash"] == 1
    await other.store_flags(inbox, [1], FlagMode.REMOVE, ["\\Seen"])
    assert await looked() == (3, 4, 4)


async def test_search_fields_dates_and_case(store: MailStore, db: Database) -> None:
    account = await make_account(db, "teacher")
    other = await make_account(db, "teacher")
    await store.append(account, "INBOX", mail("Eva Müller <eva@eltern.example>",
                                              "anna@schule.test", "Ausflug Zoo",
                                              "Wir treffen uns am Bahnhof.",
                                              "Tue, 01 Dec 2026 08:00:00 +0000"))
    await store.append(account, "INBOX", mail("Sekretariat <sek@schule.test>",
                                              "anna@schule.test, eva@eltern.example",
                                              "=?utf-8?q?Zeugnisse_f=C3=BCr_die_5a?=",
                                              "Bitte bis Freitag eintragen.",
                                              "Sat, 05 Dec 2026 09:00:00 +0000"))
    await store.append(other, "INBOX", mail("eva@eltern.example", "x@y", "Zoo", "Zoo"))

    async def uids(**terms: object) -> list[int]:
        found = await store.search(account, "INBOX", SearchQuery(**terms))  # type: ignore[arg-type]
        assert found.total == len(found.messages)
        return [m.uid for m in found.messages]

    assert await uids(text="zoo") == [1]  # other accounts' mail is never found
    assert await uids(text="ELTERN") == [2, 1]
    assert await uids(sender="eltern") == [1]
    assert await uids(recipient="eltern") == [2]
    assert await uids(subject="zeugnisse für") == [2]  # decoded encoded-words
    assert await uids(body="bahnhof") == [1]
    assert await uids(body="5a") == [] and await uids(subject="5a") == [2]  # short terms
    assert await uids(text="Bahnhof", sender="sek") == []
    assert await uids(since=dt.date(2026, 12, 2)) == [2]
    assert await uids(before=dt.date(2026, 12, 5)) == [1]
    assert await uids(since=dt.date(2026, 12, 5), before=dt.date(2026, 12, 6)) == [2]
    assert await uids(text='"%_\\') == []  # wildcards and quotes are literal

    await store.append(account, "INBOX", mail("neu@x", "anna@schule.test", "Neu: Zoo", "x"))
    assert await uids(text="zoo") == [3, 1]  # new mail is indexed at the next search


async def test_search_folds_case_the_same_on_both_backends(store: MailStore,
                                                            db: Database) -> None:
    """Unicode case folding on both sides: SQLite's LIKE folded only ASCII (a short
    "Ä" missed "ä"), PostgreSQL's ILIKE did not see "STRASSE" in "Straße"."""
    account = await make_account(db, "teacher")
    await store.append(account, "INBOX", mail("Jörg Öztürk <joerg@x>", "b@x",
                                              "Sperrung der Schulstraße", "Äpfel für Ü5"))
    await store.append(account, "INBOX", mail("a@x", "b@x", "Anderes", "Birnen"))

    async def uids(**terms: object) -> list[int]:
        found = await store.search(account, "INBOX", SearchQuery(**terms))  # type: ignore[arg-type]
        return [m.uid for m in found.messages]

    assert await uids(subject="SCHULSTRASSE") == [1]
    assert await uids(text="straße") == [1]
    assert await uids(body="äp") == [1] and await uids(body="ÄP") == [1]  # short terms
    assert await uids(body="ü5") == [1] and await uids(text="Ü") == [1]
    assert await uids(sender="ÖZTÜRK") == [1] and await uids(sender="jö") == [1]
    assert await uids(text="BIRNEN") == [2]


async def test_search_pages_and_totals(store: MailStore, db: Database) -> None:
    account = await make_account(db, "teacher")
    for n in range(9):
        await store.append(account, "INBOX", mail("a@x", "b@x", f"Wandertag {n}" if n % 3
                                                  else f"Sportfest {n}", "text",
                                                  f"Tue, 0{n + 1} Dec 2026 08:00:00 +0000"))
    found = await store.search(account, "INBOX", SearchQuery(subject="wandertag"), 2, 3)
    assert found.total == 6 and [m.uid for m in found.messages] == [6, 5, 3]
    found = await store.search(account, "INBOX", SearchQuery(subject="wandertag"), 6, 3)
    assert found.total == 6 and found.messages == []
    # Short terms, dates alone, and both with a long term: every way of the query.
    found = await store.search(account, "INBOX", SearchQuery(subject="8"), 0, 50)
    assert [m.uid for m in found.messages] == [9]
    found = await store.search(account, "INBOX", SearchQuery(since=dt.date(2026, 12, 7)))
    assert [m.uid for m in found.messages] == [9, 8, 7]
    found = await store.search(account, "INBOX", SearchQuery(
        subject="sportfest", text="6", since=dt.date(2026, 12, 2)))
    assert found.total == 1 and [m.uid for m in found.messages] == [7]
    meta = found.messages[0]
    assert meta.size > 0 and meta.blob_id and "\\Recent" not in meta.flags


@given(st.binary(max_size=400))
def test_index_row_never_fails(data: bytes) -> None:
    row = index_row("0" * 64, data, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert row["sent_at"].tzinfo is not None
    assert all(isinstance(row[k], str) for k in ("sender", "recipients", "subject", "body"))


@given(st.text(max_size=60), st.text(max_size=20), st.text(max_size=20))
def test_any_search_text_is_a_valid_fts_query(text: str, sender: str, subject: str) -> None:
    """Whatever people type, the FTS5 query built from it parses (no syntax error)."""
    import sqlite3

    from mailserver.store.search import _conditions

    where, values, fts = _conditions(SearchQuery(text=text, sender=sender, subject=subject),
                                     sqlite=True)
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE VIRTUAL TABLE message_search_fts USING fts5(sender, recipients,"
                       " subject, body, tokenize='trigram')")
    connection.execute("INSERT INTO message_search_fts VALUES (?, ?, ?, ?)",
                       (fold(sender), "", fold(subject), fold(text)))  # as index_row stores
    if fts:
        rows = connection.execute("SELECT rowid FROM message_search_fts "
                                  "WHERE message_search_fts MATCH ?", [fts]).fetchall()
        plain = all(t == " ".join(t.split()) and t.isprintable()
                    for t in (text, sender, subject))
        assert rows == [(1,)] or not plain or any(0 < len(t) < 3 for t in
                                                   (text, sender, subject))
    assert len(values) == sum(w.count("?") for w in where)


async def test_a_mailbox_shown_is_indexed_in_the_background(store: MailStore,
                                                            db: Database) -> None:
    account = await make_account(db, "teacher")
    await store.append(account, "INBOX", mail("a@x", "b@x", "Laternenumzug", "Text"))
    page = await store.latest(account, "INBOX", 0, 50)
    store.index_soon(page.mailbox_id)
    store.index_soon(page.mailbox_id)  # asked twice, indexed once
    assert store._indexing is not None
    await store._indexing
    async with db.read() as session:
        from sqlalchemy import func, select

        from mailserver.schema import MessageSearchRow
        assert await session.scalar(select(func.count()).select_from(MessageSearchRow)) == 1
    found = await store.search(account, "INBOX", SearchQuery(subject="laternen"))
    assert [m.uid for m in found.messages] == [1]


def test_thread_root_is_where_the_conversation_starts() -> None:
    from mailserver.store.search import thread_root

    assert thread_root("<a@x> <b@x>", "<b@x>", "<c@x>") == "<a@x>"
    assert thread_root("", "<b@x> (dein Brief)", "<c@x>") == "<b@x>"
    assert thread_root("", "", " <c@x> ") == "<c@x>"
    assert thread_root("kaputt", "", "") == ""


@given(st.text(max_size=300), st.text(max_size=100), st.text(max_size=100))
def test_thread_root_of_any_headers(references: str, in_reply_to: str, own: str) -> None:
    from mailserver.store.search import thread_root

    root = thread_root(references, in_reply_to, own)
    assert root == "" or (root.startswith("<") and root.endswith(">") and len(root) <= 502
                          and root in references + in_reply_to + own)

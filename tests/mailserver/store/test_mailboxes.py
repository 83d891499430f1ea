"""Mailbox operations: defaults, CREATE, DELETE, RENAME (also of INBOX), STATUS, SUBSCRIBE."""

from __future__ import annotations

import pytest

from directory.db import Database
from mailserver.store import (
    CannotDeleteInbox,
    FlagMode,
    InvalidFlag,
    InvalidMailboxName,
    MailboxExists,
    MailboxHasChildren,
    MailboxNotFound,
    MailStore,
)
from tests.mailserver.store.conftest import make_account


async def names(store: MailStore, account_id: int) -> dict[str, str | None]:
    return {s.mailbox.name: s.mailbox.special_use for s in await store.list_mailboxes(account_id)}


async def test_default_mailboxes_are_made_once_on_first_use(
        store: MailStore, db: Database) -> None:
    pupil = await make_account(db)
    assert await store.list_mailboxes(pupil) == []
    assert await store.ensure_default_mailboxes(pupil) is True
    assert await store.ensure_default_mailboxes(pupil) is False
    assert await names(store, pupil) == {
        "INBOX": None, "Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash",
        "Junk": "\\Junk", "Archive": "\\Archive"}
    validities = [s.mailbox.uidvalidity for s in await store.list_mailboxes(pupil)]
    assert len(set(validities)) == len(validities)


async def test_create_makes_parents_and_refuses_duplicates_and_bad_names(
        store: MailStore, db: Database) -> None:
    pupil = await make_account(db)
    info = await store.create_mailbox(pupil, "Schule/Mathe/Tests/")
    assert info.name == "Schule/Mathe/Tests" and info.uidnext == 1
    assert {"Schule", "Schule/Mathe", "Schule/Mathe/Tests"} <= set(await names(store, pupil))
    with pytest.raises(MailboxExists):
        await store.create_mailbox(pupil, "Schule/Mathe")
    with pytest.raises(MailboxExists):
        await store.create_mailbox(pupil, "inbox")
    for bad in ("", "a//b", "/a", "a*", "b%", "tab\there"):
        with pytest.raises(InvalidMailboxName):
            await store.create_mailbox(pupil, bad)
    own = await store.create_mailbox(pupil, "Alles", special_use="\\all")
    assert own.special_use == "\\All"
    with pytest.raises(InvalidMailboxName):
        await store.create_mailbox(pupil, "x", special_use="\\Wichtig")
    # Unicode names are stored decoded (modified UTF-7 is the IMAP wire's job)
    assert (await store.create_mailbox(pupil, "Entwürfe/Größe")).name == "Entwürfe/Größe"


async def test_delete_refuses_inbox_and_parents_and_frees_quota(
        store: MailStore, db: Database) -> None:
    pupil = await make_account(db)
    await store.create_mailbox(pupil, "Projekt/Alt")
    await store.append(pupil, "Projekt", b"a" * 300)
    with pytest.raises(CannotDeleteInbox):
        await store.delete_mailbox(pupil, "inbox")
    with pytest.raises(MailboxHasChildren):
        await store.delete_mailbox(pupil, "Projekt")
    with pytest.raises(MailboxNotFound):
        await store.delete_mailbox(pupil, "Nichts")
    old = (await store.select_snapshot(pupil, "Projekt")).mailbox
    await store.delete_mailbox(pupil, "Projekt/Alt")
    await store.delete_mailbox(pupil, "Projekt")
    assert (await store.quota(pupil)).used == 0
    new = await store.create_mailbox(pupil, "Projekt")
    assert new.uidvalidity > old.uidvalidity and new.id != old.id and new.uidnext == 1


async def test_rename_moves_inferiors_and_keeps_messages(
        store: MailStore, db: Database) -> None:
    pupil = await make_account(db)
    await store.create_mailbox(pupil, "Kurs/Bio/Notizen")
    result = await store.append(pupil, "Kurs/Bio", b"Zelle")
    renamed = await store.rename_mailbox(pupil, "Kurs/Bio", "Archiv/2025/Biologie")
    assert [r.name for r in renamed] == ["Archiv/2025/Biologie", "Archiv/2025/Biologie/Notizen"]
    assert renamed[0].uidvalidity == result.uidvalidity  # same mailbox, same UIDs
    [message] = await store.read_mailbox(pupil, "Archiv/2025/Biologie")
    assert message.body == b"Zelle" and message.uid == result.uid
    assert {"Kurs", "Archiv", "Archiv/2025"} <= set(await names(store, pupil))
    assert "Kurs/Bio" not in await names(store, pupil)
    with pytest.raises(MailboxExists):
        await store.rename_mailbox(pupil, "Kurs", "Archiv")
    with pytest.raises(InvalidMailboxName):
        await store.rename_mailbox(pupil, "Archiv", "Archiv/Unter")
    with pytest.raises(MailboxNotFound):
        await store.rename_mailbox(pupil, "Kurs/Bio", "Neu")


async def test_renaming_inbox_moves_its_messages_and_leaves_it_empty(
        store: MailStore, db: Database) -> None:
    """RFC 3501 6.3.5: RENAME INBOX moves all messages to a new mailbox."""
    pupil = await make_account(db)
    await store.create_mailbox(pupil, "INBOX/Sub")
    for body in (b"one", b"two"):
        await store.append(pupil, "INBOX", body, ["\\Seen"])
    before = (await store.select_snapshot(pupil, "INBOX")).mailbox
    [new] = await store.rename_mailbox(pupil, "INBOX", "Alter Eingang")
    assert [(m.uid, m.body, m.flags) for m in await store.read_mailbox(pupil, "Alter Eingang")] \
        == [(1, b"one", frozenset({"\\Seen"})), (2, b"two", frozenset({"\\Seen"}))]
    assert new.uidnext == 3
    inbox = await store.select_snapshot(pupil, "INBOX")
    assert inbox.messages == [] and inbox.mailbox.uidvalidity == before.uidvalidity
    assert inbox.mailbox.uidnext == before.uidnext  # UIDs are not reused in INBOX
    changes = await store.changes_since(inbox.mailbox.id, before.highestmodseq)
    assert changes.vanished == [1, 2]
    assert "INBOX/Sub" in await names(store, pupil)  # inferiors of INBOX stay
    assert (await store.quota(pupil)).used == 6
    assert (await store.append(pupil, "INBOX", b"three")).uid == 3


async def test_status_counts_and_subscriptions(store: MailStore, db: Database) -> None:
    pupil = await make_account(db)
    for body in (b"a", b"bb", b"ccc"):
        await store.append(pupil, "INBOX", body)
    inbox = (await store.select_snapshot(pupil, "INBOX")).mailbox
    await store.store_flags(inbox.id, [1, 3], FlagMode.ADD, ["\\Seen"])
    await store.store_flags(inbox.id, [3], FlagMode.ADD, ["\\Deleted"])
    status = await store.mailbox_status(pupil, "inbox")
    assert (status.messages, status.unseen, status.size, status.deleted) == (3, 1, 6, 1)
    assert status.mailbox.uidnext == 4
    await store.set_subscribed(pupil, "Junk", False)
    subscribed = {s.mailbox.name for s in await store.list_mailboxes(pupil)
                  if s.mailbox.subscribed}
    assert "Junk" not in subscribed and "INBOX" in subscribed
    with pytest.raises(MailboxNotFound):
        await store.set_subscribed(pupil, "Nope", True)
    with pytest.raises(MailboxNotFound):
        await store.mailbox_status(pupil, "Nope")


async def test_fetch_and_blobs(store: MailStore, db: Database) -> None:
    pupil = await make_account(db)
    await store.append(pupil, "INBOX", b"first", ["$Forwarded", "\\flagged"])
    await store.append(pupil, "INBOX", b"second")
    inbox = (await store.select_snapshot(pupil, "INBOX")).mailbox
    metas = await store.fetch_messages(inbox.id, [2, 1, 99])
    assert [m.uid for m in metas] == [1, 2]
    assert metas[0].flags == frozenset({"$Forwarded", "\\Flagged"}) and metas[0].size == 5
    assert metas[0].internal_date.tzinfo is not None
    assert await store.read_blob(metas[1].blob_id) == b"second"
    with pytest.raises(InvalidFlag):
        await store.append(pupil, "INBOX", b"x", ["\\Wichtig"])
    with pytest.raises(MailboxNotFound):
        await store.append(pupil, "Nirgendwo", b"x")


async def test_store_and_expunge_work_on_large_uid_sets(store: MailStore, db: Database) -> None:
    """UID sets are sent in chunks, below both backends' bound-parameter limits."""
    teacher = await make_account(db, "teacher")
    await store.ensure_default_mailboxes(teacher)
    inbox = (await store.select_snapshot(teacher, "INBOX")).mailbox
    from mailserver.store import messages as msgs
    from mailserver.store import queries as q

    async with db.write() as session:
        await q.put_blob(session, "0" * 64, b"x")
        await msgs.insert_messages(session, inbox.id, teacher, [
            {"blob_id": "0" * 64, "size": 1,
             "internal_date": msgs.now(), "system_flags": 0, "keywords": ""}
            for _ in range(12_000)])
    uids = list(range(1, 12_001))
    result = await store.store_flags(inbox.id, uids, FlagMode.ADD, ["\\Deleted"])
    assert len(result.updated) == 12_000
    assert len(await store.expunge(inbox.id, uids[::2])) == 6_000
    assert len((await store.select_snapshot(teacher, "INBOX")).messages) == 6_000
    assert (await store.quota(teacher)).used == 6_000


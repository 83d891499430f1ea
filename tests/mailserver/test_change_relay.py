"""The mail change feed across processes (mailserver.change_relay, issue 15)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conf.app import School
from directory.model import Role
from mailserver.change_relay import CHANNEL, ChangeRelay, decode, encode
from mailserver.changes import ChangeFeed, MailboxChange
from tests.support.broadcast import PairedBroadcast

ids = st.integers(min_value=0, max_value=2**62)


@settings(deadline=None)  # pure functions; a loaded machine is no failure
@given(ids, ids, ids, st.booleans())
def test_changes_round_trip(account: int, mailbox: int, modseq: int, deleted: bool) -> None:
    change = MailboxChange(account, mailbox, modseq, deleted=deleted)
    assert decode(encode(change)) == change


@settings(deadline=None)  # pure functions; a loaded machine is no failure
@given(st.text(max_size=60))
def test_anything_else_is_a_value_error(payload: str) -> None:
    try:
        decode(payload)
    except ValueError:
        pass


async def test_a_change_reaches_the_other_process_once(school: School) -> None:
    here, there = PairedBroadcast.pair()
    feed_here, feed_there = ChangeFeed(), ChangeFeed()
    ChangeRelay(feed_here, here, school.db)
    relay_there = ChangeRelay(feed_there, there, school.db)
    with feed_here.subscribe(7) as mine, feed_there.subscribe(7) as theirs, \
            feed_there.subscribe(8) as other_account:
        feed_here.publish(MailboxChange(7, 70, 5))
        assert theirs.pending() == [MailboxChange(7, 70, 5)]
        assert mine.pending() == [MailboxChange(7, 70, 5)]  # local listeners as before
        assert other_account.pending() == []
    assert relay_there.received == 1
    assert [c for c, _ in here.sent] == [CHANNEL]
    assert there.sent == []  # what arrived is not sent on again


async def test_catch_up_offers_every_listened_mailbox(school: School) -> None:
    account = await school.directory.create_account(role=Role.TEACHER, first_name="Anna",
                                                    last_name="Schmidt", password="x" * 12)
    await school.mail_store.ensure_default_mailboxes(account.id)
    here, there = PairedBroadcast.pair()
    feed_there = ChangeFeed()
    ChangeRelay(ChangeFeed(), here, school.db)
    ChangeRelay(feed_there, there, school.db)
    here.lose = True  # the notification of this delivery never arrives
    with feed_there.subscribe(account.id) as idle:
        here.send(CHANNEL, encode(MailboxChange(account.id, 1, 99)))
        assert idle.pending() == []
        await there.reconnect()
        offered = idle.pending()
    boxes = await school.mail_store.list_mailboxes(account.id)
    assert sorted(c.mailbox_id for c in offered) == sorted(b.mailbox.id for b in boxes)
    assert all(c.highestmodseq >= 1 for c in offered)


@pytest.mark.parametrize("payload", ["", "1 2 3", "a b c d", "1 2 3 4 5"])
def test_malformed_payloads(payload: str) -> None:
    with pytest.raises(ValueError):
        decode(payload)

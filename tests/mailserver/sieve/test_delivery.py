"""Sieve at delivery (mailserver.sieve.delivery) on a real mail store and database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from directory.db import Database
from directory.model import Account, Role, Status
from mailserver.changes import ChangeFeed
from mailserver.delivery import Envelope, LocalRecipient, RecipientOutcome
from mailserver.sieve.delivery import SieveRejected, SieveStep, SieveTarget
from mailserver.sieve.scripts import ScriptActive, ScriptNotFound, SieveScripts, TooManyScripts
from mailserver.store import MailStore
from tests.mailserver.store.conftest import QUOTAS, make_account

MESSAGE = (b"From: Eva <eva@eltern.example>\r\nTo: anna@schule.test\r\n"
           b"Subject: Elternabend 5a\r\nMessage-ID: <1@eltern.example>\r\n\r\nHallo\r\n")


class World:
    def __init__(self, db: Database) -> None:
        self.store = MailStore(db, QUOTAS, ChangeFeed())
        self.scripts = SieveScripts(db)
        self.accounts: dict[int, Account] = {}
        self.sent: list[tuple[str, Sequence[str], bytes]] = []
        self.redirected: list[tuple[str, str]] = []
        self.notices: list[tuple[str, bytes]] = []
        self.step = SieveStep(self.scripts, self.account, "schule.test", "mx.schule.test",
                              frozenset({"schule.test"}), self.store.settings.claim_vacation_reply,
                              redirect=self.redirect, send=self.send, notice=self.notice)
        self.target = SieveTarget(self.store, self.step)

    async def account(self, account_id: int) -> Account:
        return self.accounts[account_id]

    async def redirect(self, account: Account, own: str, target: str, message: bytes) -> None:
        self.redirected.append((own, target))

    async def send(self, account: Account, own: str, to: Sequence[str], message: bytes) -> None:
        self.sent.append((own, to, message))

    async def notice(self, recipient: str, message: bytes) -> None:
        self.notices.append((recipient, message))

    async def person(self, db: Database, login: str, role: str = "teacher") -> int:
        account_id = await make_account(db, role, login)
        self.accounts[account_id] = Account(account_id, login, login.title(), Role(role),
                                            Status.ACTIVE)
        await self.store.ensure_default_mailboxes(account_id)
        return account_id

    async def deliver(self, account_ids: Sequence[int], message: bytes = MESSAGE,
                      sender: str = "eva@eltern.example") -> object:
        transaction = self.target.begin(Envelope(sender, dt.datetime.now(dt.UTC)))
        outcomes = await transaction.add_locals([LocalRecipient(a) for a in account_ids],
                                                len(message))
        assert set(outcomes) == {RecipientOutcome.ACCEPTED}
        receipt = await transaction.commit(message)
        await self.step.wait()
        return receipt

    async def folders(self, account_id: int) -> dict[str, int]:
        return {s.mailbox.name: s.messages for s in await self.store.list_mailboxes(account_id)
                if s.messages}


@pytest.fixture
async def world(db: Database) -> World:
    return World(db)


async def activate(world: World, account_id: int, script: str) -> None:
    await world.scripts.put(account_id, "regeln", script)
    await world.scripts.activate(account_id, "regeln")


async def test_fileinto_flags_and_accounts_without_a_script(world: World, db: Database) -> None:
    anna = await world.person(db, "anna")
    ben = await world.person(db, "ben")
    await world.store.create_mailbox(anna, "Eltern")
    await activate(world, anna, 'require ["fileinto", "imap4flags"];\n'
                                'if header :contains "subject" "Elternabend" {\n'
                                '  fileinto :flags "\\\\Flagged" "Eltern"; }')
    await world.deliver([anna, ben])
    assert await world.folders(anna) == {"Eltern": 1}
    assert await world.folders(ben) == {"INBOX": 1}
    status = await world.store.mailbox_status(anna, "Eltern")
    [meta] = await world.store.fetch_messages(status.mailbox.id, [1])
    assert "\\Flagged" in meta.flags


async def test_missing_folder_and_runtime_error_deliver_to_inbox(world: World,
                                                                db: Database) -> None:
    anna = await world.person(db, "anna")
    await activate(world, anna, 'require "fileinto"; fileinto "Gibt/Es/Nicht";')
    await world.deliver([anna])
    many = 'require "fileinto";\n' + "".join(f'fileinto "F{i}";\n' for i in range(40))
    await activate(world, anna, many)
    await world.deliver([anna])
    assert await world.folders(anna) == {"INBOX": 2}


async def test_reject_by_every_recipient_is_refused_in_the_dialogue(world: World,
                                                                    db: Database) -> None:
    anna = await world.person(db, "anna")
    ben = await world.person(db, "ben")
    await activate(world, anna, 'require "reject"; reject "Bitte nicht an mich";')
    with pytest.raises(SieveRejected, match="Bitte nicht an mich"):
        await world.deliver([anna])
    assert await world.folders(anna) == {}
    assert world.notices == []  # never a backscatter
    # With another recipient the message is delivered to ben; the unverified
    # outside sender gets no notice, a local one does.
    await world.deliver([anna, ben])
    assert await world.folders(ben) == {"INBOX": 1} and await world.folders(anna) == {}
    assert world.notices == []
    await world.deliver([anna, ben], sender="ben@schule.test")
    [(recipient, dsn)] = world.notices
    assert recipient == "ben@schule.test"
    assert b"5.7.1" in dsn and b"Bitte nicht an mich" in dsn


async def test_spf_pass_in_our_results_makes_a_sender_verified(world: World) -> None:
    ours = b"Authentication-Results: mx.schule.test; spf=pass smtp.mailfrom=eltern.example\r\n"
    forged = b"Authentication-Results: mx.schule.test; spf=fail smtp.mailfrom=x.example\r\n"
    theirs = b"Authentication-Results: evil.example; spf=pass\r\n"
    assert world.step.sender_verified("eva@eltern.example", ours + MESSAGE)
    assert not world.step.sender_verified("eva@eltern.example", forged + MESSAGE)
    assert not world.step.sender_verified("eva@eltern.example", theirs + MESSAGE)


async def test_discard_and_redirect(world: World, db: Database) -> None:
    anna = await world.person(db, "anna")
    await activate(world, anna, 'redirect "zweit@schule.test";')
    await world.deliver([anna])
    assert await world.folders(anna) == {}
    assert world.redirected == [("anna@schule.test", "zweit@schule.test")]
    await activate(world, anna, "discard;")
    receipt = await world.deliver([anna])
    assert receipt.stored == ()  # type: ignore[attr-defined]
    assert await world.folders(anna) == {}


async def test_vacation_once_per_sender_never_to_lists(world: World, db: Database) -> None:
    anna = await world.person(db, "anna")
    await activate(world, anna, 'require "vacation";\n'
                                'vacation :days 2 :subject "Nicht da" "Bis Montag.";')
    await world.deliver([anna])
    await world.deliver([anna])
    await world.deliver([anna], MESSAGE.replace(b"Subject", b"List-Id: <l.example>\r\nSubject"),
                        sender="gabi@eltern.example")
    await world.deliver([anna], sender="")
    assert [(own, list(to)) for own, to, _ in world.sent] == [
        ("anna@schule.test", ["eva@eltern.example"])]
    reply = world.sent[0][2]
    assert b"Subject: Nicht da" in reply and b"Auto-Submitted: auto-replied" in reply
    assert b"In-Reply-To: <1@eltern.example>" in reply
    assert await world.folders(anna) == {"INBOX": 4}


async def test_webmail_vacation_and_sieve_vacation_share_one_record(world: World,
                                                                    db: Database) -> None:
    anna = await world.person(db, "anna")
    now = dt.datetime.now(dt.UTC)
    assert await world.store.settings.claim_vacation_reply(anna, "eva@eltern.example", now, 7)
    await activate(world, anna, 'require "vacation"; vacation "Bis Montag.";')
    await world.deliver([anna])
    assert world.sent == []  # the webmail's reply already went to eva this period


async def test_script_store_operations(world: World, db: Database) -> None:
    anna = await world.person(db, "anna")
    scripts = world.scripts
    await scripts.put(anna, "a", "keep;")
    await scripts.put(anna, "b", "discard;")
    await scripts.activate(anna, "b")
    assert await scripts.names(anna) == [("a", False), ("b", True)]
    with pytest.raises(ScriptActive):
        await scripts.delete(anna, "b")
    await scripts.rename(anna, "b", "c")
    assert await scripts.get(anna, "c") == "discard;"
    assert list(await scripts.active_programs([anna])) == [anna]
    await scripts.activate(anna, "")
    assert await scripts.active_programs([anna]) == {}
    await scripts.delete(anna, "c")
    with pytest.raises(ScriptNotFound):
        await scripts.get(anna, "c")
    for i in range(15):
        await scripts.put(anna, f"s{i}", "keep;")
    with pytest.raises(TooManyScripts):
        await scripts.put(anna, "one-too-many", "keep;")


async def test_names_no_script_can_have_are_not_found(world: World, db: Database) -> None:
    """GETSCRIPT, DELETESCRIPT, SETACTIVE and RENAMESCRIPT with a name no script can
    have (a NUL from a ManageSieve literal, over-long): "no such script", not a
    database error (PostgreSQL refuses NUL in text) that ends the connection."""
    anna = await world.person(db, "anna")
    scripts = world.scripts
    await scripts.put(anna, "a", "keep;")
    for name in ("a\x00", "\x00", "x" * 5000):
        with pytest.raises(ScriptNotFound):
            await scripts.get(anna, name)
        with pytest.raises(ScriptNotFound):
            await scripts.delete(anna, name)
        with pytest.raises(ScriptNotFound):
            await scripts.activate(anna, name)
        with pytest.raises(ScriptNotFound):
            await scripts.rename(anna, name, "b")
    assert await scripts.names(anna) == [("a", False)]

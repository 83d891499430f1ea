"""Sending as an account outside SMTP (the webmail's Send), on the real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from conf.app import School
from conf.settings import QuotaSettings, Settings
from directory.model import Role
from mailserver.smtp.routing import Router
from mailserver.store import MailboxNotFound, QuotaExceeded
from mailserver.submission import SubmissionRefused, Submitter
from tests.support.schools import make_settings

MESSAGE = b"From: anna@schule.test\r\nTo: paul@schule.test\r\nSubject: x\r\n\r\nhallo\r\n"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "school", database_url, quota=QuotaSettings(teacher=1))


def submitter(school: School) -> Submitter:
    store = school.mail_store
    return Submitter(Router(school.directory, frozenset({"schule.test"})), store, store,
                     hostname="mail.schule.test")


async def test_sent_copy_and_a_full_senders_mailbox(school: School) -> None:
    anna = await school.directory.create_account(role=Role.TEACHER, login="anna")
    paul = await school.directory.create_account(role=Role.PUPIL, login="paul")
    send = submitter(school)
    await send.submit(anna, "anna@schule.test", ["paul@schule.test"], MESSAGE, client="::1")
    assert len(await school.mail_store.read_mailbox(anna.id, "Sent")) == 1
    # Anna's 1 MiB is full: the mail still goes out, only her Sent copy is missing.
    quota = await school.mail_store.quota(anna.id)
    assert quota.limit is not None
    await school.mail_store.append(anna.id, "Archive", b"x" * (quota.limit - quota.used - 50))
    with pytest.raises(QuotaExceeded):
        await school.mail_store.append(anna.id, "Sent", MESSAGE)
    await send.submit(anna, "anna@schule.test", ["paul@schule.test"], MESSAGE, client="::1")
    assert len(await school.mail_store.read_mailbox(paul.id)) == 2
    assert len(await school.mail_store.read_mailbox(anna.id, "Sent")) == 1


async def test_refusals_name_every_address_and_send_nothing(school: School) -> None:
    anna = await school.directory.create_account(role=Role.TEACHER, login="anna")
    paul = await school.directory.create_account(role=Role.PUPIL, login="paul")
    send = submitter(school)
    with pytest.raises(SubmissionRefused) as refused:
        await send.submit(paul, "paul@schule.test",
                          ["anna@schule.test", "nobody@schule.test", "x@outside.example",
                           "not an address"], MESSAGE, client="::1")
    assert [r.address for r in refused.value.refused] == [
        "nobody@schule.test", "x@outside.example", "not an address"]
    with pytest.raises(SubmissionRefused):
        await send.submit(paul, "anna@schule.test", ["anna@schule.test"], MESSAGE, client="::1")
    with pytest.raises(MailboxNotFound):
        await school.mail_store.read_mailbox(anna.id)


@pytest.mark.parametrize("headers", [
    b"From: paul@schule.test\r\nSender: anna@schule.test\r\n",
    b"From: paul@schule.test\r\nResent-From: anna@schule.test\r\n",
    b"From: paul@schule.test\r\nResent-Sender: <anna@schule.test>\r\n",
    b"From: \"anna@schule.test\" <paul@schule.test>\r\n",
    b"From: =?utf-8?q?anna=40schule=2Etest?= <paul@schule.test>\r\n",
    b"From: paul@schule.test\r\nSender : anna@schule.test\r\n",
], ids=["sender", "resent-from", "resent-sender", "display-name", "encoded-display-name",
        "obsolete-colon"])
async def test_the_webmail_applies_the_submission_header_rules(school: School,
                                                               headers: bytes) -> None:
    """Issue 19.2: the same check as SMTP submission (mailserver.smtp.identity)."""
    anna = await school.directory.create_account(role=Role.TEACHER, login="anna")
    paul = await school.directory.create_account(role=Role.PUPIL, login="paul")
    send = submitter(school)
    message = headers + b"To: anna@schule.test\r\nSubject: x\r\n\r\nhallo\r\n"
    with pytest.raises(SubmissionRefused) as refused:
        await send.submit(paul, "paul@schule.test", ["anna@schule.test"], message,
                          client="::1")
    assert "anna@schule.test" in refused.value.refused[0].reason
    with pytest.raises(MailboxNotFound):
        await school.mail_store.read_mailbox(anna.id)
    own = (b"From: \"Paul (paul@schule.test)\" <paul@schule.test>\r\n"
           b"Sender: paul@schule.test\r\nTo: anna@schule.test\r\nSubject: x\r\n\r\nhallo\r\n")
    await send.submit(paul, "paul@schule.test", ["anna@schule.test"], own, client="::1")
    assert len(await school.mail_store.read_mailbox(anna.id)) == 1

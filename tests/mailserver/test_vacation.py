"""Vacation reply rules (RFC 3834) and the reply message."""

from __future__ import annotations

import email
import email.policy

from hypothesis import given
from hypothesis import strategies as st

from directory.model import Account, Role, Status
from mailserver.store.account_settings import MailSettings
from mailserver.vacation import _header_block, may_answer, vacation_reply

ME = "anna@schule.test"


def headers(text: str) -> email.message.Message:
    return _header_block(text.replace("\n", "\r\n").encode() + b"\r\n\r\nbody")


def test_personal_mail_is_answered_lists_and_robots_are_not() -> None:
    personal = "From: eva@eltern.example\nTo: Anna <anna@schule.test>\nSubject: Frage\n"
    assert may_answer("eva@eltern.example", headers(personal), [ME])
    assert may_answer("eva@eltern.example", headers(personal.replace("To:", "Cc:")), [ME])
    assert not may_answer("", headers(personal), [ME])  # bounces
    assert not may_answer("MAILER-DAEMON@x.example", headers(personal), [ME])
    assert not may_answer("owner-list@x.example", headers(personal), [ME])
    assert not may_answer("news-request@x.example", headers(personal), [ME])
    assert not may_answer("noreply@x.example", headers(personal), [ME])
    for extra in ("Auto-Submitted: auto-replied", "Auto-Submitted: auto-generated",
                  "Precedence: bulk", "Precedence: list", "Precedence: junk",
                  "List-Id: <eltern.schule.test>", "List-Unsubscribe: <mailto:x@y>"):
        assert not may_answer("eva@eltern.example", headers(personal + extra + "\n"), [ME])
    assert may_answer("eva@eltern.example", headers(personal + "Auto-Submitted: no\n"), [ME])
    group = "From: eva@eltern.example\nTo: klasse-5a@schule.test\n"
    assert not may_answer("eva@eltern.example", headers(group), [ME])  # not named: a list


@given(st.binary(max_size=600), st.text(max_size=40))
def test_any_header_block_is_judged_without_error(data: bytes, sender: str) -> None:
    assert may_answer(sender, _header_block(data), [ME]) in (True, False)


def test_reply_is_marked_and_threaded() -> None:
    account = Account(1, "anna", "Anna Lehrerin", Role.TEACHER, Status.ACTIVE)
    original = headers("From: eva@eltern.example\nTo: anna@schule.test\nSubject: Frage\n"
                       "Message-ID: <2@eltern.example>\nReferences: <1@eltern.example>\n")
    reply = email.message_from_bytes(vacation_reply(
        MailSettings(vacation_enabled=True, vacation_body="Bis Montag."), account, ME,
        "eva@eltern.example", original), policy=email.policy.default)
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["Subject"] == "Abwesend: Frage"
    assert reply["In-Reply-To"] == "<2@eltern.example>"
    assert reply["References"] == "<1@eltern.example> <2@eltern.example>"
    assert reply["From"] == "Anna Lehrerin <anna@schule.test>"
    assert reply.get_content().strip() == "Bis Montag."

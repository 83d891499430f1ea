"""Webmail writing over HTTPS: reply-all, forward, drafts, refused sends keep attachments."""

from __future__ import annotations

import email
import email.policy
import html as html_module
import re
from email.message import EmailMessage

import aiohttp
from aiohttp import FormData

from conf.app import School
from directory.model import Role
from tests.e2e.webmail_support import *  # noqa: F403  (fixtures)
from tests.e2e.webmail_support import OUTSIDE, csrf_of, deliver, flags_of, log_in, login_form


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


async def form_of(browser: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with browser.get(url) as response:
        assert response.status == 200, url
        html = await response.text()
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    for name in ("to", "cc", "bcc", "subject"):
        match = re.search(rf'name="{name}" value="([^"]*)"', html)
        fields[name] = match.group(1) if match else ""
    body = re.search(r'<textarea [^>]*name="body"[^>]*>(.*?)</textarea>', html, re.DOTALL)
    fields["body"] = body.group(1) if body else ""
    return {k: html_module.unescape(v) for k, v in fields.items()}


async def test_reply_all_and_forward_keep_the_thread(school_with_people: School,
                                                    browser: aiohttp.ClientSession) -> None:
    school = school_with_people
    message = EmailMessage()
    message["From"] = f"Eva Eltern <{OUTSIDE}>"
    message["Reply-To"] = "Elternbeirat <beirat@outside.example>"
    message["To"] = "anna@schule.test, paul@schule.test"
    message["Cc"] = "carl@outside.example"
    message["Subject"] = "AW: Re: Ausflug"
    message["Message-ID"] = "<m3@outside.example>"
    message["Date"] = "Sat, 05 Dec 2026 10:00:00 +0100"
    message["References"] = "<m1@outside.example> <m2@outside.example>"
    message.set_content("Wann geht es los?\n")
    message.add_attachment(b"%PDF plan", maintype="application", subtype="pdf",
                           filename="Plan.pdf")
    await deliver(school, message)
    await log_in(browser, "anna")

    form = await form_of(browser, "/compose?reply_box=INBOX&reply_uid=1&mode=all")
    assert form["to"] == "Elternbeirat <beirat@outside.example>"
    assert form["cc"] == "paul@schule.test, carl@outside.example"
    assert form["subject"] == "Re: Ausflug"
    assert "\n\nAm " in form["body"] and "> Wann geht es los?" in form["body"]
    async with browser.get("/compose?reply_box=INBOX&reply_uid=1&mode=all",
                           headers={"Accept-Language": "en"}) as response:
        english = html_module.unescape(await response.text())
    assert "schrieb" not in english
    assert re.search(r"\n\nOn [^\n]+, Eva Eltern <[^>]+> wrote:\n> Wann geht es los\?", english)
    form["body"] = "Um acht.\n" + form["body"]
    async with browser.post("/compose", data=form, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
    paul = await school.directory.get_account("paul")
    (received,) = await school.mail_store.read_mailbox(paul.id)
    reply = parsed(received.body)
    assert reply["In-Reply-To"] == "<m3@outside.example>"
    assert reply["References"] == ("<m1@outside.example> <m2@outside.example> "
                                   "<m3@outside.example>")
    assert reply["Subject"] == "Re: Ausflug"

    form = await form_of(browser, "/compose?reply_box=INBOX&reply_uid=1&mode=attach")
    assert form["subject"] == "Fwd: Ausflug" and form["forward_mode"] == "attach"
    form["to"] = "paul"  # a bare login is completed to the school address
    async with browser.post("/compose", data=form, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
    forwarded = parsed((await school.mail_store.read_mailbox(paul.id))[-1].body)
    assert forwarded["To"] == "paul@schule.test"
    (inner,) = forwarded.iter_attachments()
    assert inner.get_content_type() == "message/rfc822"
    assert inner.get_content()["Message-ID"] == "<m3@outside.example>"

    form = await form_of(browser, "/compose?reply_box=INBOX&reply_uid=1&mode=forward")
    form["to"] = "paul@schule.test"
    async with browser.post("/compose", data=form, allow_redirects=False) as response:
        assert response.status == 303
    inline = parsed((await school.mail_store.read_mailbox(paul.id))[-1].body)
    assert "Weitergeleitete Nachricht" in inline.get_body().get_content()
    assert [p.get_filename() for p in inline.iter_attachments()] == ["Plan.pdf"]


async def test_draft_saved_reopened_and_refused_send_keeps_files(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    school = school_with_people
    await log_in(browser, "paul")
    async with browser.get("/compose") as response:
        token = csrf_of(await response.text())
    data = FormData()
    for key, value in {"csrf": token, "to": "anna", "bcc": "paul@schule.test",
                       "subject": "Referat", "body": "Entwurf\n", "action": "draft"}.items():
        data.add_field(key, value)
    data.add_field("attachments", b"Folien", filename="Folien.txt", content_type="text/plain")
    async with browser.post("/compose", data=data, allow_redirects=False) as response:
        assert response.status == 303
        location = response.headers["Location"]
    assert location.startswith("/compose?draft_uid=")
    assert await flags_of(school, "paul", "Drafts") == [{"\\Draft", "\\Seen"}]

    form = await form_of(browser, location)
    assert form["to"] == "anna@schule.test" and form["bcc"] == "paul@schule.test"
    assert form["subject"] == "Referat" and form["draft_uid"]
    async with browser.get(location) as response:
        assert 'name="keep" value="1" checked> Folien.txt' in await response.text()

    # A pupil may not write outside: refused, and the file is still there.
    data = FormData()
    for key, value in {**form, "to": OUTSIDE, "action": "send", "keep": "1"}.items():
        data.add_field(key, value)
    async with browser.post("/compose", data=data, allow_redirects=False) as response:
        assert response.status == 400
        html = await response.text()
    assert "Nicht gesendet" in html and "Folien.txt" in html
    assert len(await flags_of(school, "paul", "Drafts")) == 1  # replaced, not doubled
    form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))

    data = FormData()
    for key, value in {**form, "to": "anna@schule.test", "subject": "Referat",
                       "body": "Fertig\n", "action": "send", "keep": "1"}.items():
        data.add_field(key, value)
    async with browser.post("/compose", data=data, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
    anna = await school.directory.get_account("anna")
    (received,) = await school.mail_store.read_mailbox(anna.id)
    sent = parsed(received.body)
    assert "Bcc" not in sent
    assert [(p.get_filename(), p.get_content()) for p in sent.iter_attachments()] == [
        ("Folien.txt", "Folien")]
    assert await flags_of(school, "paul", "Drafts") == []  # sent: the draft is gone


async def test_recipient_suggestions_follow_the_role_policy(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    directory = school_with_people.directory
    await directory.create_account(role=Role.PARENT, login="eva.eltern",
                                   password="Eva-Elternteil-1", display_name="Eva Eltern")
    await log_in(browser, "anna")
    async with browser.get("/compose") as response:
        teacher = await response.text()
    assert 'value="paul@schule.test"' in teacher and 'value="eva.eltern@schule.test"' in teacher
    assert "anna@schule.test" not in teacher.split("<datalist")[1]  # not oneself
    browser.cookie_jar.clear()
    async with browser.post("/login", data=await login_form(browser, "eva.eltern",
                                                            "Eva-Elternteil-1")) as response:
        assert response.status == 200
    async with browser.get("/compose") as response:
        parent = await response.text()
    # Parents reach teachers, not other people's children (the role policy).
    assert 'value="anna@schule.test">Anna Lehrerin' in parent
    assert "paul@schule.test" not in parent

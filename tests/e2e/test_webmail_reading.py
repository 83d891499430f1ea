"""Webmail reading over HTTPS: HTML mail framed and sanitised, images, links.

(The same in a real browser, where "no script runs" is observed, is in
tests/browser.)
"""

from __future__ import annotations

import re
from email.message import EmailMessage

import aiohttp

from conf.app import School
from tests.e2e.webmail_support import *  # noqa: F403  (fixtures)
from tests.e2e.webmail_support import OUTSIDE, deliver, log_in

PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                      "0000000d49444154789c63f8cfc0f01f0005000201a5f2d0a50000000049454e44"
                      "ae426082")


def newsletter() -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Förderverein <{OUTSIDE}>"
    message["To"] = "anna@schule.test"
    message["Subject"] = "Newsletter"
    message.set_content("Text version https://foerderverein.example/text")
    message.add_alternative(
        '<html><head><script>document.title="pwned"</script></head><body>'
        '<h1 onclick="x()">Sommerfest</h1><img src="https://tracker.example/open.gif">'
        '<img src="cid:logo@foerderverein"><img src=x onerror="alert(1)">'
        '<a href="https://foerderverein.example/anmeldung">Anmelden</a>'
        '<form action="/logout" method="post"><button>Klick</button></form></body></html>',
        subtype="html")
    html_part = message.get_payload()[1]
    html_part.add_related(PIXEL, maintype="image", subtype="png", cid="<logo@foerderverein>")
    return message


async def test_html_mail_is_framed_sanitised_and_images_wait(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    await deliver(school_with_people, newsletter())
    await log_in(browser, "anna")
    async with browser.get("/message?box=INBOX&uid=1") as response:
        page = await response.text()
        assert "frame-src 'self'" in response.headers["Content-Security-Policy"]
        assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "Sommerfest" not in page  # the mail's HTML is never part of the page itself
    (frame_tag,) = re.findall(r"<iframe [^>]*>", page)
    sandbox = re.search(r'sandbox="([^"]*)"', frame_tag)
    assert sandbox and "allow-scripts" not in sandbox.group(1)
    assert "1 externes Bild wurde blockiert" in page
    assert 'href="/message?box=INBOX&amp;uid=1&amp;images=1"' in page

    async with browser.get("/message/frame?box=INBOX&uid=1") as response:
        body = await response.text()
        csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "img-src 'self' data:;" in csp
    assert "script-src" not in csp and "sandbox allow-same-origin" in csp
    assert "allow-scripts" not in csp
    assert "Sommerfest" in body
    for bad in ("script", "pwned", "onclick", "onerror", "tracker.example", "<form", "<button"):
        assert bad not in body, bad
    assert ('<a href="https://foerderverein.example/anmeldung" target="_blank" '
            'rel="noopener noreferrer">') in body
    (inline,) = re.findall(r'src="(/message/inline[^"]+)"', body)
    async with browser.get(inline.replace("&amp;", "&")) as response:
        assert response.status == 200 and response.content_type == "image/png"
        assert await response.read() == PIXEL

    async with browser.get("/message/frame?box=INBOX&uid=1&images=1") as response:
        body = await response.text()
        assert "img-src 'self' data: https: http:" in response.headers[
            "Content-Security-Policy"]
    assert 'src="https://tracker.example/open.gif"' in body
    async with browser.get("/message/inline?box=INBOX&uid=1&cid=nothing") as response:
        assert response.status == 404


async def test_plain_text_links_are_clickable(school_with_people: School,
                                              browser: aiohttp.ClientSession) -> None:
    message = EmailMessage()
    message["From"] = OUTSIDE
    message["To"] = "anna@schule.test"
    message["Subject"] = "Link"
    message.set_content("Bitte lesen: https://schule.test/plan?tag=1&x=<2> danke")
    await deliver(school_with_people, message)
    await log_in(browser, "anna")
    async with browser.get("/message?box=INBOX&uid=1") as response:
        page = await response.text()
    assert ('<a href="https://schule.test/plan?tag=1&amp;x=" target="_blank" '
            'rel="noopener noreferrer">') in page
    assert "&lt;2&gt; danke" in page and "<iframe" not in page


async def test_images_of_a_sender_always_shown_once_chosen(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    """"Bilder von ... immer anzeigen": remembered per reader and sender (issue 11.3)."""
    await deliver(school_with_people, newsletter())
    await deliver(school_with_people, newsletter())
    other = newsletter()
    other.replace_header("From", "Werbung <werbung@elsewhere.example>")
    await deliver(school_with_people, other)
    await log_in(browser, "anna")

    async def frame_policy(uid: int) -> str:
        async with browser.get(f"/message/frame?box=INBOX&uid={uid}") as response:
            return response.headers["Content-Security-Policy"]

    async with browser.get("/message?box=INBOX&uid=1") as response:
        page = await response.text()
    assert f"Bilder von {OUTSIDE} immer anzeigen" in page
    assert "https:" not in await frame_policy(1)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    async with browser.post("/images/always", data={
            "csrf": csrf.group(1), "box": "INBOX", "uid": "1"},
            allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/message?box=INBOX&uid=1"
    for uid in (1, 2):  # every mail of that sender, also one not opened yet
        async with browser.get(f"/message?box=INBOX&uid={uid}") as response:
            page = await response.text()
        assert "externes Bild wurde blockiert" not in page
        assert f"Bilder von {OUTSIDE} werden immer angezeigt." in page
        assert "img-src 'self' data: https: http:" in await frame_policy(uid)
    assert "https:" not in await frame_policy(3)  # another sender still waits

    async with browser.post("/images/always", data={"box": "INBOX", "uid": "3"},
                            allow_redirects=False) as response:
        assert response.status == 403  # no token, nothing remembered
    assert "https:" not in await frame_policy(3)

    async with browser.post("/images/never", data={
            "csrf": csrf.group(1), "box": "INBOX", "uid": "2"},
            allow_redirects=False) as response:
        assert response.status == 303
    assert "https:" not in await frame_policy(1)
    async with browser.post("/images/always", data={
            "csrf": csrf.group(1), "box": "INBOX", "uid": "99"}) as response:
        assert response.status == 404


def thread_mail(message_id: str, subject: str, references: str = "",
                sender: str = f"Eva Eltern <{OUTSIDE}>", to: str = "anna@schule.test"
                ) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id
    if references:
        message["References"] = references
        message["In-Reply-To"] = references.split()[-1]
    message.set_content(subject)
    return message


async def test_the_message_page_shows_its_conversation(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    """Grouped by References/In-Reply-To (RFC 5322 3.6.4) over INBOX and Sent; other
    people's copies of the same thread never show (issue 11.5, threads)."""
    school = school_with_people
    anna = await school.directory.get_account("anna")
    paul = await school.directory.get_account("paul")
    await deliver(school, thread_mail("<q0@eltern.example>", "Ausflug"))
    await school.mail_store.append(anna.id, "Sent", thread_mail(
        "<a1@schule.test>", "Re: Ausflug", "<q0@eltern.example>",
        sender="anna@schule.test", to=OUTSIDE).as_bytes())
    await deliver(school, thread_mail("<q2@eltern.example>", "Re: Re: Ausflug",
                                      "<q0@eltern.example> <a1@schule.test>"))
    await deliver(school, thread_mail("<x@eltern.example>", "Sommerfest"))
    await school.mail_store.append(paul.id, "INBOX", thread_mail(
        "<p1@eltern.example>", "Ausflug auch für Paul", "<q0@eltern.example>",
        to="paul@schule.test").as_bytes())
    await log_in(browser, "anna")

    async with browser.get("/message?box=INBOX&uid=2") as response:
        page = await response.text()
    assert "Unterhaltung (3 Nachrichten)" in page
    listed = page[page.index("Unterhaltung ("):page.index("</ol>")]
    assert listed.index("Ausflug") < listed.index("Re: Ausflug") < listed.index("Re: Re:")
    assert 'href="/message?box=INBOX&amp;uid=1"' in listed
    assert 'href="/message?box=Sent&amp;uid=1"' in listed and "(Gesendet)" in listed
    assert 'aria-current="page"' in listed
    assert "Sommerfest" not in listed and "Paul" not in listed
    async with browser.get("/message?box=INBOX&uid=3") as response:
        assert "Unterhaltung (" not in await response.text()  # alone: no list
    async with browser.get("/message?box=Sent&uid=1") as response:
        assert "Unterhaltung (3 Nachrichten)" in await response.text()

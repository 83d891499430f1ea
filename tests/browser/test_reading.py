"""Reading HTML mail in a real Chromium: nothing of the mail runs, nothing remote
loads until the reader allows images, inline (cid:) images show.

A loopback HTTPS listener stands in for the tracker and the attacker: every
request the browser makes to it is recorded.  The mail's script would change
the page title and call the listener, its onerror handler would call it, its
remote image is the listener, so "nothing happened" is observed, not assumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import EmailMessage

import pytest
from aiohttp import web

from conf.app import School
from conf.wiring.imap import server_tls_context
from tests.browser.conftest import PHONE, OpenPage, log_in, screenshot
from tests.support.webmail import deliver

PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                      "0000000d49444154789c63f8cfc0f01f0005000201a5f2d0a50000000049454e44"
                      "ae426082")


@pytest.fixture
async def listener(webmail_school: School) -> AsyncIterator[tuple[str, list[str]]]:
    """(base URL, paths requested so far) of a loopback HTTPS server."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(body=PIXEL, content_type="image/png")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    settings = webmail_school.settings
    context = server_tls_context(str(settings.path(settings.tls.certificate)),
                                 str(settings.path(settings.tls.key)))
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    yield f"https://127.0.0.1:{port}", seen
    await runner.cleanup()


def hostile_newsletter(listener_url: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Förderverein <info@foerderverein.example>"
    message["To"] = "anna@schule.test"
    message["Subject"] = "Newsletter Dezember"
    message.set_content("Sommerfest am Freitag")
    message.add_alternative(
        "<html><head><title>x</title>"
        f"<script>document.title='pwned';fetch('{listener_url}/script')</script></head><body>"
        "<h1>Sommerfest am Freitag</h1>"
        f"<img src='{listener_url}/remote.png' alt='Foto' width='40' height='40'>"
        f"<img src='nothing' onerror=\"fetch('{listener_url}/onerror')\">"
        "<img src='cid:logo@foerderverein' alt='Logo' width='20' height='20'>"
        f"<p style=\"background:url({listener_url}/css)\">Anmeldung "
        "<a href='https://foerderverein.example/anmeldung'>hier</a></p>"
        f"<form action='{listener_url}/form'><button>Los</button></form>"
        f"<iframe src='{listener_url}/frame'></iframe></body></html>",
        subtype="html")
    message.get_payload()[1].add_related(PIXEL, maintype="image", subtype="png",
                                         cid="<logo@foerderverein>")
    return message


async def test_html_mail_runs_nothing_and_loads_nothing_until_allowed(
        webmail_school: School, open_page: OpenPage,
        listener: tuple[str, list[str]]) -> None:
    listener_url, seen = listener
    await deliver(webmail_school, hostile_newsletter(listener_url))
    page = await open_page()
    inline: list[int] = []
    page.on("response", lambda r: inline.append(r.status)
            if "/message/inline" in r.url else None)
    await log_in(page, "anna")
    await page.get_by_role("link", name="Newsletter Dezember").click()
    await page.wait_for_load_state("networkidle")
    frame = page.frame_locator("iframe.mail-html")
    await frame.get_by_role("heading", name="Sommerfest am Freitag").wait_for()
    await asyncio.sleep(0.5)
    assert seen == []  # no script, no handler, no remote image, no CSS, no frame
    assert "pwned" not in await page.title()
    assert inline == [200]  # the cid: image came from the message
    link = frame.get_by_role("link", name="hier")
    assert await link.get_attribute("rel") == "noopener noreferrer"
    assert await link.get_attribute("target") == "_blank"
    assert await frame.locator("form, iframe, script").count() == 0
    await screenshot(page, "message-html-blocked-desktop")

    await page.get_by_role("link", name="Bilder anzeigen").click()
    await page.wait_for_load_state("networkidle")
    await page.frame_locator("iframe.mail-html").get_by_role("heading").wait_for()
    for _ in range(50):
        if seen:
            break
        await asyncio.sleep(0.1)
    assert seen == ["/remote.png"]  # the image only: still no script, handler or CSS
    assert "pwned" not in await page.title()
    await screenshot(page, "message-html-images-desktop")


async def test_plain_text_links_are_clickable_on_a_phone(webmail_school: School,
                                                         open_page: OpenPage) -> None:
    message = EmailMessage()
    message["From"] = "sekretariat@foerderverein.example"
    message["To"] = "anna@schule.test"
    message["Subject"] = "Vertretungsplan"
    message.set_content("Der Plan: https://schule.test/plan?tag=montag.\nGruß")
    await deliver(webmail_school, message)
    page = await open_page(viewport=PHONE)
    await log_in(page, "anna")
    await page.get_by_role("link", name="Vertretungsplan").click()
    link = page.get_by_role("link", name="https://schule.test/plan?tag=montag")
    assert await link.get_attribute("href") == "https://schule.test/plan?tag=montag"
    assert await link.get_attribute("rel") == "noopener noreferrer"
    await screenshot(page, "message-text-phone")

"""Bad input to the webmail: ids out of range, unknown folders, other people's mail,
unknown pages.  Always a page in German with 404 (or a redirect), never a 500 or a
stack trace (issue 11.8, issue 19.5)."""

from __future__ import annotations

import re
import urllib.parse

import aiohttp
import pytest
import yarl

from conf.app import School
from tests.e2e.webmail_support import *  # noqa: F403  (fixtures)
from tests.e2e.webmail_support import base_url, csrf_of, deliver, incoming, log_in

BAD_IDS = ["9223372036854775808", "4294967296", "-1", "0", "abc", "", "1e3", "0x10",
           "9" * 5000, "1; DROP TABLE messages", "%00", "1.5"]
BAD_BOXES = ["Gibt es nicht", "../anna/INBOX", "INBOX\x00", "x" * 5000, "INBOX/../Sent", "*",
             "&Jjo-", "INBOX\r\nX"]
GET_PAGES = ["/message?box=INBOX&uid={id}", "/message/frame?box=INBOX&uid={id}",
             "/message/inline?box=INBOX&uid={id}&cid=x", "/attachment?box=INBOX&uid={id}&part=0",
             "/attachment?box=INBOX&uid=1&part={id}", "/mail?box=INBOX&page={id}",
             "/search?box=INBOX&q=x&page={id}", "/compose?reply_box=INBOX&reply_uid={id}",
             "/compose?draft_uid={id}", "/compose?reply_box=INBOX&reply_uid={id}&mode=attach"]


def german_page(html: str) -> None:
    assert '<html lang="de">' in html, html[:300]
    assert "Traceback" not in html and "Error" not in html


@pytest.fixture
async def anna(school_with_people: School, browser: aiohttp.ClientSession
               ) -> aiohttp.ClientSession:
    await deliver(school_with_people, incoming("Elternabend", text="Am Dienstag."))
    await log_in(browser, "anna")
    return browser


async def test_ids_out_of_range_are_not_found(anna: aiohttp.ClientSession) -> None:
    for template in GET_PAGES:
        for bad in BAD_IDS:
            url = template.replace("{id}", urllib.parse.quote(bad, safe=""))
            async with anna.get(yarl.URL(url, encoded=True), allow_redirects=False) as response:
                assert response.status in (200, 303, 404), (url[:80], response.status)
                if response.status != 303:
                    german_page(await response.text())
    async with anna.get("/message?box=INBOX&uid=9223372036854775808") as response:
        assert response.status == 404
        text = await response.text()
        assert "Nicht gefunden" in text and "gibt es nicht" in text


async def test_posts_with_ids_out_of_range_change_nothing(school_with_people: School,
                                                          anna: aiohttp.ClientSession) -> None:
    async with anna.get("/mail") as response:
        token = csrf_of(await response.text())
    for bad in BAD_IDS:
        for path, extra in (("/delete", {}), ("/move", {"target": "Archive"}),
                            ("/bulk", {"action": "delete"}), ("/bulk", {"action": "spam"})):
            form = {"csrf": token, "box": "INBOX", "uid": bad, **extra}
            async with anna.post(path, data=form, allow_redirects=False) as response:
                assert response.status in (303, 404), (path, bad[:30], response.status)
                if response.status == 404:
                    german_page(await response.text())
    account = await school_with_people.directory.get_account("anna")
    assert len(await school_with_people.mail_store.read_mailbox(account.id)) == 1


async def test_unknown_folders_and_pages_are_a_german_404(anna: aiohttp.ClientSession) -> None:
    for box in BAD_BOXES:
        quoted = urllib.parse.quote(box, safe="")
        for url in (f"/mail?box={quoted}", f"/search?box={quoted}&q=x",
                    f"/message?box={quoted}&uid=1"):
            async with anna.get(yarl.URL(url, encoded=True),
                                allow_redirects=False) as response:
                assert response.status == 404, (url[:60], response.status)
                german_page(await response.text())
    for path in ("/gibt-es-nicht", "/message/", "/static/../app.py", "/static/fehlt.css",
                 "/static/", "/static/%2e%2e/app.py", "/static/style.css/x"):
        async with anna.get(path) as response:
            assert response.status == 404
            text = await response.text()
            german_page(text)
            assert "Nicht gefunden" in text
    async with anna.put("/mail") as response:
        assert response.status == 405
        german_page(await response.text())


async def test_another_persons_message_is_not_found(school_with_people: School,
                                                    browser: aiohttp.ClientSession) -> None:
    await deliver(school_with_people, incoming("Nur für Anna", text="geheim"))
    await log_in(browser, "paul")
    for url in ("/message?box=INBOX&uid=1", "/message/frame?box=INBOX&uid=1",
                "/attachment?box=INBOX&uid=1&part=0", "/compose?reply_box=INBOX&reply_uid=1"):
        async with browser.get(url) as response:
            text = await response.text()
            assert response.status == 404, url
            german_page(text)
            assert "geheim" not in text and "Nur für Anna" not in text


async def _raw_exchange(base_url: str, request: bytes) -> bytes:
    """``request`` as bytes over TLS to the webmail (no HTTP client in between)."""
    import asyncio
    import ssl

    address = yarl.URL(base_url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(address.host, address.port, ssl=context)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n",
    b"\x16\x03\x01garbage-after-tls\r\n\r\n",
])
async def test_malformed_requests_get_no_banner_and_no_default_page(
        school_with_people: School, request_bytes: bytes) -> None:
    """What a raw socket sending garbage gets back: a short German 400 page, no
    ``Server: Python/... aiohttp/...`` banner, no aiohttp default page."""
    answer = await _raw_exchange(base_url(school_with_people), request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] 4\d\d ", head), answer[:200]
    lowered = answer.lower()
    assert b"aiohttp" not in lowered and b"python" not in lowered, answer[:400]
    headers = {line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip()
               for line in head.split(b"\r\n")[1:] if b":" in line}
    assert headers.get(b"server", b"Schulhof") == b"Schulhof"
    assert b"Ung\xc3\xbcltige Anfrage" in body, body[:300]

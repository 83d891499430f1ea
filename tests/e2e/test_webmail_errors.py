"""Bad input to the webmail: ids out of range, unknown folders, other people's mail,
unknown pages.  Always a page in German with 404 (or a redirect), never a 500 or a
stack trace (issue 11.8, issue 19.5)."""

from __future__ import annotations

import urllib.parse

import aiohttp
import pytest
import yarl

from conf.app import School
from tests.e2e.webmail_support import *  # noqa: F403  (fixtures)
from tests.e2e.webmail_support import csrf_of, deliver, incoming, log_in

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
    for path in ("/gibt-es-nicht", "/message/", "/static/../app.py"):
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

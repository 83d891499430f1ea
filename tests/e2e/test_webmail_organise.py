"""Webmail organising over HTTPS: search, several messages at once, folders, spam."""

from __future__ import annotations

import re
from email.message import EmailMessage

import aiohttp

from conf.app import School
from tests.e2e.webmail_support import *  # noqa: F403  (fixtures)
from tests.e2e.webmail_support import OUTSIDE, csrf_of, deliver, flags_of, log_in


def mail(subject: str, body: str, date: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Eva Eltern <{OUTSIDE}>"
    message["To"] = "anna@schule.test"
    message["Subject"] = subject
    message["Date"] = date
    message.set_content(body)
    return message


def uids_of(html: str) -> list[int]:
    return [int(u) for u in re.findall(r'name="uid" value="(\d+)"', html)]


async def test_search_mark_move_and_folders(school_with_people: School,
                                           browser: aiohttp.ClientSession) -> None:
    school = school_with_people
    await deliver(school, mail("Elternabend", "Am Dienstag in der Aula.",
                               "Tue, 01 Dec 2026 08:00:00 +0000"))
    await deliver(school, mail("Ausflug", "Treffpunkt Bahnhof, 8 Uhr.",
                               "Thu, 03 Dec 2026 08:00:00 +0000"))
    await deliver(school, mail("Werbung", "Billig!", "Fri, 04 Dec 2026 08:00:00 +0000"))
    await log_in(browser, "anna")

    async with browser.get("/search", params={"box": "INBOX", "q": "bahnhof"}) as response:
        assert uids_of(await response.text()) == [2]
    async with browser.get("/search", params={"box": "INBOX", "from": "eltern",
                                              "until": "2026-12-03"}) as response:
        assert uids_of(await response.text()) == [2, 1]
    async with browser.get("/search", params={"box": "INBOX", "subject": "zeugnis"}) as response:
        assert "Nichts gefunden." in await response.text()

    async with browser.get("/mail") as response:
        token = csrf_of(await response.text())

    async def bulk(action: str, uids: list[int], **more: str) -> None:
        data = [("csrf", token), ("box", more.pop("box", "INBOX")), ("action", action)]
        data += [("uid", str(u)) for u in uids] + list(more.items())
        async with browser.post("/bulk", data=data, allow_redirects=False) as response:
            assert response.status == 303, await response.text()

    await bulk("read", [1, 2])
    await bulk("flag", [2])
    assert await flags_of(school, "anna", "INBOX") == [
        {"\\Seen"}, {"\\Seen", "\\Flagged"}, frozenset()]
    await bulk("unread", [1])
    await bulk("spam", [3])
    assert len(await flags_of(school, "anna", "Junk")) == 1
    await bulk("notspam", [1], box="Junk")
    assert len(await flags_of(school, "anna", "INBOX")) == 3

    async with browser.post("/folders", data={"csrf": token, "name": "Klasse 5a"}) as response:
        assert response.status == 200
    await bulk("move", [1, 2], target="Klasse 5a")
    assert len(await flags_of(school, "anna", "Klasse 5a")) == 2
    async with browser.post("/folders/rename", data={"csrf": token, "box": "Klasse 5a",
                                                     "name": "Klasse 6a"}) as response:
        assert response.status == 200
    assert len(await flags_of(school, "anna", "Klasse 6a")) == 2
    async with browser.post("/folders/rename", data={"csrf": token, "box": "INBOX",
                                                     "name": "X"}) as response:
        assert response.status == 400
    async with browser.get("/mail") as response:  # unread counts in the folder list
        assert re.search(r'Klasse 6a <span class="count">1<span class="visually-hidden"> ungel',
                         await response.text())

    await bulk("delete", [1, 2], box="Klasse 6a")
    assert len(await flags_of(school, "anna", "Trash")) == 2
    async with browser.post("/folders/delete", data={"csrf": token,
                                                     "box": "Klasse 6a"}) as response:
        assert response.status == 200
    assert await flags_of(school, "anna", "Klasse 6a") == []
    async with browser.post("/folders/empty", data={"csrf": token, "box": "Trash"}) as response:
        assert response.status == 200
    assert await flags_of(school, "anna", "Trash") == []
    async with browser.post("/folders/empty", data={"csrf": token, "box": "INBOX"}) as response:
        assert response.status == 400
    assert len(await flags_of(school, "anna", "INBOX")) == 1


async def test_server_timing_names_where_a_folder_page_spent_its_time(
        school_with_people: School, browser: aiohttp.ClientSession) -> None:
    """``Server-Timing`` (what the benchmark reads): the whole and its parts."""
    await log_in(browser, "anna")
    async with browser.get("/mail?box=INBOX") as response:
        assert response.status == 200
        header = response.headers["Server-Timing"]
    parts = dict(re.findall(r"([a-z]+);dur=([0-9.]+)", header))
    assert {"app", "auth", "folders", "page", "render", "sql", "pool"} <= set(parts), header
    assert float(parts["app"]) >= float(parts["page"]) + float(parts["folders"])

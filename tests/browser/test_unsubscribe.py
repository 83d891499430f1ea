"""The digests' one-click unsubscribe link in a real Chromium, without logging in: the
page asks first (German), the button turns Paul's room digests off (RFC 8058)."""

from __future__ import annotations

import urllib.parse

from conf.app import School
from conf.wiring.bridge import unsubscribe_links
from messenger.room_digest import DigestPreferences
from tests.browser.conftest import OpenPage, screenshot


async def test_unsubscribe_link_asks_then_turns_digests_off(webmail_school: School,
                                                            open_page: OpenPage) -> None:
    paul = await webmail_school.directory.get_account("paul")
    preferences = DigestPreferences(webmail_school.db)
    url = urllib.parse.urlsplit(unsubscribe_links(webmail_school.settings).url(paul.id))
    page = await open_page()
    await page.goto(f"{url.path}?{url.query}")
    await page.get_by_text("Sollen für paul@schule.test keine Zusammenfassungen").wait_for()
    await screenshot(page, "unsubscribe-confirm")
    assert await preferences.enabled(paul.id)  # opening the link changes nothing
    await page.get_by_role("button", name="Zusammenfassungen abbestellen").click()
    await page.get_by_text("Für paul@schule.test kommen keine Zusammenfassungen").wait_for()
    assert not await preferences.enabled(paul.id)

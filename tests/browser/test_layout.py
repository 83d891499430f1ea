"""Phone layout and accessibility in Chromium: no horizontal scrolling at 375 px, a
keyboard-only path through login, folder and message, the skip link, visible focus,
WCAG AA contrast of the text on the main pages, German 404 pages; screenshots of the
main pages at desktop and phone size (test-screenshots/)."""

from __future__ import annotations

from typing import Any

from conf.app import School
from tests.browser.conftest import DESKTOP, PHONE, OpenPage, log_in, screenshot
from tests.support.webmail import deliver, incoming

# Every element with its own text: its colour and the first opaque background behind it.
COLOURS_JS = """() => {
  const parse = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.99)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    if (!own || style.visibility === 'hidden' || box.width < 2 || box.height < 2) continue;
    out.push({text: el.textContent.trim().slice(0, 40), fg: parse(style.color).slice(0, 3),
              bg: background(el), size: parseFloat(style.fontSize),
              bold: parseInt(style.fontWeight) >= 700});
  }
  return out;
}"""


# Form controls a person can see and use but that have no name for a screen reader.
UNLABELLED_JS = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(el => el.type !== 'hidden' && el.getClientRects().length > 0)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
  .map(el => el.outerHTML.slice(0, 80))"""


def luminance(rgb: list[float]) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: list[float], bg: list[float]) -> float:
    """WCAG 2.2 contrast ratio (https://www.w3.org/TR/WCAG22/#dfn-contrast-ratio)."""
    high, low = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


async def low_contrast(page: Any) -> list[tuple[str, float]]:
    found = []
    for item in await page.evaluate(COLOURS_JS):
        large = item["size"] >= 24 or (item["size"] >= 18.66 and item["bold"])
        ratio = contrast(item["fg"], item["bg"])
        if ratio < (3.0 if large else 4.5):
            found.append((item["text"], round(ratio, 2)))
    return found


async def horizontal_overflow(page: Any) -> int:
    return int(await page.evaluate(
        "() => document.documentElement.scrollWidth - window.innerWidth"))


async def mail_for_anna(school: School) -> None:
    await deliver(school, incoming("Elternabend am Dienstag",
                                   text="Liebe Eltern, https://schule.test/elternabend-2026"
                                        "-informationen-fuer-alle-klassen-sehr-lang"))
    await deliver(school, incoming("Klassenfahrt " + "sehr " * 20 + "lange Betreffzeile",
                                   sender="Frau Mustermann-Schmidt <eine.sehr.lange."
                                          "adresse.von.aussen@outside.example>"))


async def test_main_pages_fit_a_phone_and_have_enough_contrast(
        webmail_school: School, open_page: OpenPage) -> None:
    await mail_for_anna(webmail_school)
    for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page = await open_page(viewport=viewport)
        await page.goto("/login")
        await screenshot(page, f"login-{name}")
        assert await horizontal_overflow(page) <= 0 and await low_contrast(page) == []
        await log_in(page, "anna")
        pages = [("folder", "/mail"), ("message", "/message?box=INBOX&uid=2"),
                  ("message-text", "/message?box=INBOX&uid=1"), ("compose", "/compose"),
                  ("settings", "/settings"), ("not-found", "/message?box=INBOX&uid=99")]
        for label, url in pages:
            await page.goto(url)
            await screenshot(page, f"{label}-{name}")
            assert await horizontal_overflow(page) <= 0, (label, name)
            assert await low_contrast(page) == [], (label, name)
            assert await page.evaluate(UNLABELLED_JS) == [], (label, name)
        if viewport is PHONE:  # the folder list is folded away behind "Ordner"
            await page.goto("/mail")
            assert not await page.locator("nav.sidebar").is_visible()
            menu = page.locator("details.folder-menu summary")
            assert await menu.is_visible()
            await menu.click()
            await page.locator("details.folder-menu").get_by_role(
                "link", name="Papierkorb").click()
            await page.wait_for_url("**/mail?box=Trash")
            await screenshot(page, "folder-trash-phone")


async def test_keyboard_only_login_folder_and_message(webmail_school: School,
                                                      open_page: OpenPage) -> None:
    await mail_for_anna(webmail_school)
    page = await open_page()
    await page.goto("/login")
    active = "() => [document.activeElement.id, document.activeElement.textContent.trim()]"
    for _ in range(4):  # the field has autofocus; else Tab reaches it past the skip link
        if (await page.evaluate(active))[0] == "login":
            break
        await page.keyboard.press("Tab")
    assert (await page.evaluate(active))[0] == "login"
    await page.keyboard.type("anna")
    await page.keyboard.press("Tab")
    assert (await page.evaluate(active))[0] == "password"
    await page.keyboard.type("Anna-Lehrerin-1")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/mail")

    # The first Tab offers the skip link; it leads past header and folders.
    await page.keyboard.press("Tab")
    assert (await page.evaluate(active))[1] == "Zum Inhalt springen"
    assert await page.evaluate("() => getComputedStyle(document.activeElement)"
                               ".outlineStyle") != "none"  # focus is visible
    await page.keyboard.press("Enter")
    assert (await page.evaluate(active))[0] == "main"
    for _ in range(60):
        await page.keyboard.press("Tab")
        if (await page.evaluate(active))[1] == "Elternabend am Dienstag":
            break
    else:
        raise AssertionError("no message link reachable with Tab")
    focused = page.locator(":focus")
    assert await focused.evaluate("el => getComputedStyle(el).outlineStyle") != "none"
    await screenshot(page, "keyboard-focus-desktop")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/message?box=INBOX&uid=1")
    assert await page.get_by_role("heading", name="Elternabend am Dienstag").is_visible()


async def test_unread_is_not_marked_by_bold_alone(webmail_school: School,
                                                   open_page: OpenPage) -> None:
    await mail_for_anna(webmail_school)
    page = await open_page(viewport=PHONE)
    await log_in(page, "anna")
    await page.goto("/message?box=INBOX&uid=1")
    await page.goto("/mail")
    unread = page.locator("tr.unseen")
    assert await unread.count() == 1
    assert await unread.get_by_text("Neu", exact=True).is_visible()
    assert await page.locator("tr.seen").get_by_text("Neu", exact=True).count() == 0


async def test_error_pages_in_the_browser(webmail_school: School, open_page: OpenPage) -> None:
    await deliver(webmail_school, incoming("Nur für Anna", text="geheim"))
    page = await open_page(viewport=PHONE)
    await log_in(page, "paul")
    for url in ("/message?box=INBOX&uid=9223372036854775808", "/message?box=INBOX&uid=1",
                "/mail?box=Gibt%20es%20nicht", "/gibt-es-nicht"):
        response = await page.goto(url)
        assert response is not None and response.status == 404, url
        assert "nicht gefunden" in (await page.locator("h1").inner_text()).lower()
        assert "geheim" not in await page.content()
        assert await horizontal_overflow(page) <= 0
    await screenshot(page, "not-found-phone")
    await page.get_by_role("link", name="Zum Posteingang").click()
    await page.wait_for_url("**/mail")


async def test_an_english_browser_gets_english_and_can_switch_to_german(
        webmail_school: School, open_page: OpenPage) -> None:
    await mail_for_anna(webmail_school)
    page = await open_page(viewport=PHONE, locale="en-GB")
    await page.goto("/login")
    assert await page.get_by_role("heading", name="Log in").is_visible()
    await page.get_by_label("User name").fill("anna")
    await page.get_by_label("Password").fill("Anna-Lehrerin-1")
    await page.get_by_label("Password").press("Enter")
    await page.wait_for_url("**/mail")
    assert await page.evaluate("() => document.documentElement.lang") == "en"
    assert await page.get_by_role("heading", name="Inbox").is_visible()
    await screenshot(page, "folder-english-phone")
    await page.get_by_role("link", name="Deutsch").click()
    await page.wait_for_url("**/mail")
    assert await page.get_by_role("heading", name="Posteingang").is_visible()
    assert await page.evaluate("() => document.documentElement.lang") == "de"

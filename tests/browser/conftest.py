"""Real-browser tests of the webmail: Debian's Chromium driven by Playwright.

Playwright's own browser download is not used: the tests launch the system
Chromium (``/usr/bin/chromium``, or ``SCHULHOF_CHROMIUM``).  Without Chromium
or the ``playwright`` package the tests skip with a message saying so, unless
``SCHULHOF_REQUIRE_BROWSER=1`` (set by ``make test`` as root, i.e. in CI),
where a missing browser is a failure.

Fixtures:
* ``webmail_school``: a running school with the webmail and Anna (teacher) and Paul
  (pupil), passwords in ``tests.support.webmail.PASSWORDS``;
* ``chromium``: a launched headless browser (one per test: Playwright's async
  API is bound to the test's event loop);
* ``open_page(viewport=DESKTOP)``: a fresh browser context (own cookies) with
  a page on the webmail's HTTPS (its self-signed certificate accepted);
* ``log_in(page, "anna")``: through the login form, as a person would;
* ``screenshot(page, name)``: a full-page PNG in ``test-screenshots/`` (not
  committed; ``SCHULHOF_SCREENSHOTS`` picks another folder) for a person to
  look at.

Every test in this folder is marked ``browser``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conf.app import School
from tests.support.webmail import PASSWORDS, add_people, webmail_url

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("SCHULHOF_SCREENSHOTS")
                   or Path(__file__).resolve().parents[2] / "test-screenshots")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def _no_browser(reason: str) -> None:
    if os.environ.get("SCHULHOF_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required but {reason}")
    pytest.skip(f"browser tests skipped: {reason} (apt-get install chromium; "
                "pip install -e '.[test]')")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("SCHULHOF_CHROMIUM") or shutil.which("chromium") \
        or "/usr/bin/chromium"
    if not Path(path).exists():
        _no_browser(f"no Chromium at {path}")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _no_browser("the Python package playwright is not installed")
    return path


@pytest.fixture
async def chromium(chromium_path: str) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=chromium_path,
                                               args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def webmail_school(running_school: School) -> School:
    return await add_people(running_school)


@pytest.fixture
def base_url(webmail_school: School) -> str:
    return webmail_url(webmail_school)


OpenPage = Callable[..., Awaitable["Page"]]


@pytest.fixture
async def open_page(chromium: Browser, base_url: str) -> AsyncIterator[OpenPage]:
    """``await open_page(viewport=PHONE)``: a page in its own context (own cookies);
    further keywords go to Playwright's ``new_context`` (``java_script_enabled=False``)."""
    contexts: list[Any] = []

    async def new(viewport: dict[str, int] = DESKTOP, locale: str = "de-DE",
                  **options: Any) -> Page:
        context = await chromium.new_context(base_url=base_url, viewport=viewport,
                                             locale=locale, ignore_https_errors=True,
                                             **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return await context.new_page()

    yield new
    for context in contexts:
        await context.close()


async def log_in(page: Page, login: str, password: str | None = None) -> None:
    """Log in through the form as a person would (type, press Enter)."""
    await page.goto("/login")
    await page.get_by_label("Benutzername").fill(login)
    await page.get_by_label("Passwort").fill(PASSWORDS[login] if password is None
                                             else password)
    await page.get_by_label("Passwort").press("Enter")
    await page.wait_for_load_state()


async def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG of what the browser shows, for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".png")
    await page.screenshot(path=str(path), full_page=True)
    return path

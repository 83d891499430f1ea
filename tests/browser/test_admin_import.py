"""The admin's import in Chromium: a bad file shows every bad line and changes nothing;
a Windows-1252 export is previewed with its names intact, applied, and the password
letters are downloaded once and read back with pdftotext."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conf.app import School
from directory.model import Role
from tests.browser.conftest import OpenPage, log_in, screenshot
from tests.support.csv_factory import make_school, to_csv

ADMIN_PASSWORD = "Chefin-Passwort-1"
BAD = ("external_id;first_name;last_name;role;class\r\n"
       "S1;Jürgen;Müßig;Schüler;5a\r\n"
       "S2;;Leer;Schüler;5a\r\n"
       "S3;Ida;Iks;Hausmeister;5a\r\n"
       "S1;Doppelt;Da;Schüler;5b\r\n").encode("cp1252")


@pytest.fixture
async def admin_school(webmail_school: School) -> School:
    await webmail_school.directory.create_account(role=Role.ADMIN, login="chefin",
                                                  password=ADMIN_PASSWORD)
    return webmail_school


async def test_import_in_the_browser(admin_school: School, open_page: OpenPage,
                                     tmp_path: Path) -> None:
    page = await open_page()
    await log_in(page, "chefin", ADMIN_PASSWORD)
    await page.goto("/admin/import")

    await page.get_by_label("CSV-Datei").set_input_files(files=[{
        "name": "kaputt.csv", "mimeType": "text/csv", "buffer": BAD}])
    await page.get_by_role("button", name="Vorschau").click()
    await page.wait_for_load_state()
    alert = page.get_by_role("alert")
    assert "kaputt.csv wurde nicht importiert: 3 fehlerhafte Zeilen" in await alert.inner_text()
    rows = await page.locator("table.errors tbody tr").all_inner_texts()
    assert [row.split("\t")[0] for row in rows] == ["3", "4", "5"]
    assert await admin_school.directory.list_accounts(role=Role.PUPIL) == [
        a for a in await admin_school.directory.list_accounts(role=Role.PUPIL)
        if a.login == "paul"]
    await screenshot(page, "admin-import-bad-file")

    export = to_csv(make_school(20, 2, 4))
    export.decode("cp1252")  # the factory writes Windows-1252, as the programs do
    await page.get_by_label("CSV-Datei").set_input_files(files=[{
        "name": "export.csv", "mimeType": "text/csv", "buffer": export}])
    await page.get_by_role("button", name="Vorschau").click()
    await page.wait_for_load_state()
    assert await page.locator("#created").inner_text() == "26"
    preview = await page.locator("main").inner_text()
    assert "juergen.muessig (Jürgen Müßig, pupil, 5a)" in preview
    assert "+ 5a (class)" in preview
    assert await admin_school.directory.list_accounts(role=Role.PARENT) == []  # a dry run
    await screenshot(page, "admin-import-preview")

    await page.get_by_role("button", name="Import ausführen").click()
    await page.wait_for_load_state()
    assert await page.locator("#created").inner_text() == "26"
    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Passwortbriefe herunterladen").click()
    download = await waiting.value
    letters = tmp_path / "briefe.pdf"
    await download.save_as(str(letters))
    assert letters.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is missing: apt-get install poppler-utils (make browser does)")
    text = subprocess.run(["pdftotext", "-layout", str(letters), "-"], check=True,
                          capture_output=True).stdout.decode()
    pages = [p for p in text.split("\f") if p.strip()]
    assert len(pages) == 26
    assert any("juergen.muessig@schule.test" in p and "Jürgen Müßig" in p for p in pages)
    # The letters are gone after the one download.
    response = await page.goto(f"/admin/briefe/{download.url.rsplit('/', 1)[1]}")
    assert response is not None and response.status == 410

    juergen = await admin_school.directory.get_account("juergen.muessig")
    assert juergen.first_name == "Jürgen" and juergen.last_name == "Müßig"
    entries = await admin_school.audit.entries(action="import.apply")
    assert [(e.actor, e.target) for e in entries] == [("chefin", "export.csv")]

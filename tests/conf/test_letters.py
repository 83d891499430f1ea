"""Password letters read back with pdftotext (poppler-utils): a page per person, grouped
by class and sorted by name, every login, address and password on its page, names in
any script; ``schulhof import --letters-out`` and ``schulhof user reset-password``
write them as new private files and the passwords work."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conf.admin.letters import LetterSchool, letter_order, render_letters
from conf.app import School
from conf.cli import main
from conf.settings import load_settings
from directory.importer import InitialPassword
from tests.support.csv_factory import make_school, to_csv

SCHOOL = LetterSchool(name="Gymnasium am See", webmail_url="https://mail.schule.test",
                      mail_host="mail.schule.test", imaps_port=993, submission_port=587,
                      matrix_url="https://matrix.schule.test")


def pdf_pages(data: bytes, tmp_path: Path) -> list[str]:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext is missing: apt-get install poppler-utils (make browser does)")
    source = tmp_path / "letters.pdf"
    source.write_bytes(data)
    text = subprocess.run(["pdftotext", "-layout", str(source), "-"], check=True,
                          capture_output=True).stdout.decode("utf-8")
    return [page for page in text.split("\f") if page.strip()]


def person(login: str, first: str, last: str, class_name: str, password: str
           ) -> InitialPassword:
    return InitialPassword(login, f"{login}@schule.test", first, last, "pupil", class_name,
                           password)


def test_a_page_per_person_by_class_and_name(tmp_path: Path) -> None:
    people = [person("zoe.adam", "Zoë", "Adam", "7b", "Pw7bZoeAdam1"),
              person("lukasz.sahin", "Łukasz", "Şahin", "5a", "Pw5aLukasz22"),
              person("anna.zorn", "Anna", "Zorn", "5a", "Pw5aAnnaZ333"),
              person("frau.lehmann", "Frau", "Lehmann", "", "PwLehrerin44"),
              person("ben.berg", "Ben", "Berg", "5a", "Pw5aBenBerg5"),
              person("tom.abel", "Tom", "Abel", "10a", "Pw10aTomAbel")]
    pages = pdf_pages(render_letters(people, SCHOOL), tmp_path)
    assert len(pages) == 6
    order = [p.login for p in letter_order(people)]
    assert order == ["ben.berg", "lukasz.sahin", "anna.zorn", "zoe.adam", "tom.abel",
                     "frau.lehmann"]
    for page, login in zip(pages, order, strict=True):
        who = next(p for p in people if p.login == login)
        assert "Gymnasium am See" in page
        assert login in page and who.email in page and who.password in page
        assert f"{who.first_name} {who.last_name}" in page
        assert ("Klasse " + who.class_name in page) == bool(who.class_name)
        assert "https://matrix.schule.test" in page and "mail.schule.test, Port 993" in page
        # Nobody else's password is on the page.
        assert all(p.password not in page for p in people if p.login != login)


def test_letters_in_english_when_the_school_says_so(tmp_path: Path) -> None:
    people = [person("ben.berg", "Ben", "Berg", "5a", "Pw5aBenBerg5")]
    [german] = pdf_pages(render_letters(people, SCHOOL), tmp_path)
    assert "Zugangsdaten für Ben Berg" in german and "Erstes Passwort" in german
    english_school = dataclasses.replace(SCHOOL, language="en")
    [english] = pdf_pages(render_letters(people, english_school), tmp_path)
    assert "Zugangsdaten" not in english and "Passwort" not in english
    assert "Pw5aBenBerg5" in english and "ben.berg@schule.test" in english
    assert "Class 5a" in english and "First password" in english, english


def run(config: str, *args: str) -> int:
    return main(["--config", config, *args])


def test_import_and_reset_write_letters_whose_passwords_work(
        tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "school"), "--domain", "schule.test",
                 "--database", database_url]) == 0
    config = str(tmp_path / "school" / "schulhof.toml")
    export = tmp_path / "export.csv"
    export.write_bytes(to_csv(make_school(12, 2, 3)))
    letters, passwords = tmp_path / "briefe.pdf", tmp_path / "pw.csv"
    assert run(config, "import", str(export), "--letters-out", str(letters),
               "--passwords-out", str(passwords)) == 0
    out = capsys.readouterr().out
    assert f"password letters for the 17 new accounts: {letters}" in out
    assert stat.S_IMODE(letters.stat().st_mode) == 0o600
    rows = list(csv.DictReader(passwords.open(encoding="utf-8", newline="")))
    pages = pdf_pages(letters.read_bytes(), tmp_path)
    assert len(pages) == len(rows) == 17
    for row in rows:
        page = next(p for p in pages if f"{row['login']}@schule.test" in p)
        assert row["initial_password"] in page
    assert run(config, "import", str(export), "--letters-out", str(letters)) == 1
    assert "exists" in capsys.readouterr().err

    reset = tmp_path / "neu.pdf"
    login = rows[0]["login"]
    assert run(config, "user", "reset-password", login, "--letter-out", str(reset)) == 0
    assert f"new password for {login}: letter in {reset}" in capsys.readouterr().out
    (page,) = pdf_pages(reset.read_bytes(), tmp_path)
    new_password = next(line.split()[-1] for line in page.splitlines()
                        if "Erstes Passwort" in line)
    assert new_password != rows[0]["initial_password"]

    async def check() -> tuple[bool, bool, list[str]]:
        school = await School.open(load_settings(config), migrate=False)
        try:
            auth = school.authenticator
            new_ok = (await auth.authenticate(login, new_password, "127.0.0.1")).login == login
            other = rows[1]
            other_ok = (await auth.authenticate(other["login"], other["initial_password"],
                                                "127.0.0.1")).login == other["login"]
            actions = [e.action for e in await school.audit.entries()]
            return new_ok, other_ok, actions
        finally:
            await school.close()

    new_ok, other_ok, actions = asyncio.run(check())
    assert new_ok and other_ok
    assert actions[:2] == ["account.password_reset", "import.apply"]

"""``schulhof import`` and ``schulhof purge`` through ``conf.cli.main``."""

from __future__ import annotations

import csv
import logging
import stat
from pathlib import Path

import pytest

from conf.cli import main
from tests.support.csv_factory import make_school, to_csv


@pytest.fixture
def config(tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """A school made by ``schulhof init`` on this test's database (SQLite or PostgreSQL)."""
    assert main(["init", str(tmp_path / "school"), "--domain", "schule.test",
                 "--database", database_url]) == 0
    capsys.readouterr()
    return str(tmp_path / "school" / "schulhof.toml")


def schulhof(config: str, *args: str) -> int:
    return main(["--config", config, *args])


def test_import_dry_run_then_import_with_passwords_then_again(
        config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    export = tmp_path / "export.csv"
    export.write_bytes(to_csv(make_school(20, 2, 4)))

    assert schulhof(config, "import", str(export), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was changed" in out
    assert "read 26 rows (cp1252, ';' separated)" in out
    assert "created    26" in out
    assert "  juergen.muessig (Jürgen Müßig, pupil, 5a)" in out
    assert "  + 5a (class)" in out

    passwords = tmp_path / "passwords.csv"
    assert schulhof(config, "import", str(export), "--passwords-out", str(passwords)) == 0
    captured = capsys.readouterr()
    assert "created    26" in captured.out
    assert "juergen.muessig (" not in captured.out  # names only in a dry run
    assert f"initial passwords of the 26 new accounts: {passwords}" in captured.out
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    secrets = [row["initial_password"]
               for row in csv.DictReader(passwords.open(encoding="utf-8", newline=""))]
    assert len(secrets) == 26
    everything = captured.out + captured.err + caplog.text
    assert not any(secret in everything for secret in secrets)

    assert schulhof(config, "import", str(export)) == 0
    out = capsys.readouterr().out
    for line in ("created    0", "updated    0", "moved      0", "leavers    0",
                 "restored   0", "unchanged  26"):
        assert line in out


def test_import_without_passwords_file_says_so(config: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "export.csv"
    export.write_bytes(to_csv(make_school(3, 1, 0), encoding="utf-8", delimiter=","))
    assert schulhof(config, "import", str(export)) == 0
    out = capsys.readouterr().out
    assert "read 4 rows (utf-8, ',' separated)" in out
    assert "the 4 new accounts have no password" in out
    assert "schulhof user passwd" in out


def test_bad_file_exits_1_and_lists_every_bad_line(config: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "export.csv"
    export.write_text("Vorname;Nachname;Rolle;Klasse;external_id\n"
                      "Anna;Schmidt;Schüler;5a;1\n"
                      ";Meier;Schüler;5a;2\n"
                      "Cem;Kaya;Hausmeister;;3\n"
                      "Eva;Ost;Schüler;5b;1\n", encoding="utf-8")
    assert schulhof(config, "import", str(export)) == 1
    err = capsys.readouterr().err
    assert f"schulhof: {export}: 3 bad rows, nothing imported:" in err
    assert "  line 3: empty first_name" in err
    assert "  line 4: unknown role 'Hausmeister'" in err
    assert "  line 5: duplicate external_id '1' (first on line 2)" in err
    assert schulhof(config, "import", str(export), "--dry-run") == 1
    assert schulhof(config, "import", str(tmp_path / "missing.csv")) == 1
    assert "cannot read" in capsys.readouterr().err


def test_unreadable_file_and_existing_passwords_file_exit_1(
        config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = tmp_path / "export.csv"
    export.write_bytes(b"\x00\x01binary")
    assert schulhof(config, "import", str(export)) == 1
    assert "NUL characters" in capsys.readouterr().err
    export.write_bytes(to_csv(make_school(3, 1, 0)))
    taken = tmp_path / "old-passwords.csv"
    taken.write_text("do not lose me")
    assert schulhof(config, "import", str(export), "--passwords-out", str(taken)) == 1
    assert "exists" in capsys.readouterr().err
    assert taken.read_text() == "do not lose me"
    assert schulhof(config, "import", str(export), "--dry-run") == 0
    assert "created    4" in capsys.readouterr().out  # nothing was imported before


def test_leavers_are_purged_after_the_grace_period(config: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    roster = make_school(10, 1, 0)
    export = tmp_path / "export.csv"
    export.write_bytes(to_csv(roster))
    assert schulhof(config, "import", str(export), "--today", "2026-08-01") == 0
    export.write_bytes(to_csv(roster.without("S00001")))
    assert schulhof(config, "import", str(export), "--dry-run", "--today", "2026-08-01") == 0
    out = capsys.readouterr().out
    assert "leavers    1\n  juergen.muessig (deleted by 'schulhof purge' from 2026-10-30)" in out
    assert schulhof(config, "import", str(export), "--today", "2026-08-01") == 0
    assert "leavers    1" in capsys.readouterr().out
    assert schulhof(config, "purge", "--today", "2026-10-29") == 0
    assert "0 leaver(s) purged" in capsys.readouterr().out
    assert schulhof(config, "purge", "--today", "2026-10-30") == 0
    out = capsys.readouterr().out
    assert "purged juergen.muessig" in out and "1 leaver(s) purged" in out


def test_import_settings_choose_profile_and_grace_days(
        config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    roster = make_school(4, 1, 0)
    export = tmp_path / "export.csv"
    export.write_bytes(to_csv(roster))
    monkeypatch.setenv("SCHULHOF_IMPORT_PROFILE", "magellan")
    assert schulhof(config, "import", str(export)) == 1
    assert "unknown import profile 'magellan' (known: generic)" in capsys.readouterr().err
    monkeypatch.setenv("SCHULHOF_IMPORT_PROFILE", "generic")
    monkeypatch.setenv("SCHULHOF_IMPORT_LEAVER_GRACE_DAYS", "7")
    assert schulhof(config, "import", str(export), "--today", "2026-08-01") == 0
    export.write_bytes(to_csv(roster.without("S00001")))
    assert schulhof(config, "import", str(export), "--dry-run", "--today", "2026-08-01") == 0
    assert "from 2026-08-08" in capsys.readouterr().out

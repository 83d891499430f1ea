"""Log settings and formats (conf.log_format): JSON lines carry the message's pairs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conf.log_format import JsonFormatter
from conf.settings import SettingsError, load_settings


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("schulhof.smtp", logging.INFO, __file__, 1, message, args, None)


def test_json_lines_carry_the_pairs() -> None:
    line = JsonFormatter().format(_record(
        "event=smtp_accepted id=%s listener=%s size=%d reason=%s", "ab12", "mx", 512,
        '"two words"'))
    entry = json.loads(line)
    assert entry["event"] == "smtp_accepted" and entry["id"] == "ab12"
    assert entry["size"] == "512" and entry["reason"] == "two words"
    assert entry["level"] == "INFO" and entry["logger"] == "schulhof.smtp"
    assert entry["ts"].endswith("+00:00")


@settings(deadline=None)  # the machine may be busy: no per-example deadline
@given(st.text(max_size=200))
def test_any_message_is_one_json_line(message: str) -> None:
    line = JsonFormatter().format(_record(message))
    assert "\n" not in line and json.loads(line)["msg"] == message


@pytest.mark.parametrize(("section", "text", "error"), [
    ("log", 'level = "LOUD"', "log.level"),
    ("log", 'format = "xml"', "log.format"),
    ("smtp", 'mta_sts_mode = "strict"', "smtp.mta_sts_mode"),
])
def test_bad_choices_are_settings_errors(tmp_path: Path, section: str, text: str,
                                         error: str) -> None:
    path = tmp_path / "schulhof.toml"
    path.write_text(f'[school]\ndomain = "schule.test"\n\n[{section}]\n{text}\n')
    with pytest.raises(SettingsError, match=error):
        load_settings(path, environ={})


def test_good_log_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "schulhof.toml"
    path.write_text('[school]\ndomain = "schule.test"\n\n[log]\nlevel = "debug"\n'
                    'format = "json"\n')
    settings = load_settings(path, environ={})
    assert (settings.log.level, settings.log.format) == ("debug", "json")

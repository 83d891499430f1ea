"""The admin pages' and letters' English catalog is complete and keeps every placeholder."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from conf.admin_web.context import HERE
from conf.admin_web.import_reasons import WORDING
from directory.importer.errors import REASONS
from mailserver.webmail.i18n import load_translations

ROOT = Path(__file__).resolve().parents[2]
PO = HERE / "locale/en/LC_MESSAGES/messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def marked() -> set[str]:
    found = set()
    for folder, method_map in ((HERE, [("**.py", "python"), ("templates/**.html", "jinja2")]),
                               (ROOT / "conf/admin", [("letters.py", "python")])):
        for _file, _line, message, _comments, _context in extract_from_dir(folder, method_map):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_admin_text_has_an_english_translation() -> None:
    with PO.open("rb") as source:
        catalog = read_po(source, locale="en")
    translated = {m.id: m.string for m in catalog if m.id and not m.fuzzy}
    texts = marked()
    assert "Konten" in texts and "Zugangsdaten für %(name)s" in texts  # the extraction works
    missing = sorted(t for t in texts if not translated.get(t))
    assert not missing, f"run `make admin-catalog` and translate in {PO}: {missing}"
    for key, string in translated.items():
        assert set(PLACEHOLDER.findall(str(string))) == set(PLACEHOLDER.findall(str(key))), key
    english = load_translations(HERE / "locale")["en"]
    assert english("Protokoll") == "Audit log"


def test_every_import_reason_has_a_german_wording() -> None:
    """The importer's codes (English for the command line) and the admin pages'
    wordings name the same problems with the same values."""
    assert set(WORDING) == set(REASONS)
    for code, wording in WORDING.items():
        english = set(re.findall(r"%\((\w+)\)[sr]", REASONS[code]))
        german = set(PLACEHOLDER.findall(wording))
        assert german <= english | {"holder"}, code

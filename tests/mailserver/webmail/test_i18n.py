"""The webmail's languages: the English catalog is complete, the language is negotiated,
lower layers' English refusals become sentences for people."""

from __future__ import annotations

import re
from datetime import timedelta as dt_timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from hypothesis import given
from hypothesis import strategies as st

from mailserver.smtp import replies
from mailserver.submission import _reason
from mailserver.webmail import i18n
from mailserver.webmail.i18n import load_translations, negotiate, parse_accept_language
from mailserver.webmail.refusals import refusal_text

ROOT = Path(__file__).resolve().parents[3]
PO = ROOT / "mailserver/webmail/locale/en/LC_MESSAGES/messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def marked_messages() -> set[str]:
    """Every text marked with _(), N_() or ngettext() in the webmail's code and templates
    and in the room digest's mail (mailserver/digest_mail.py, the same catalog)."""
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    found = set()
    for folder, methods in ((ROOT / "mailserver/webmail", method_map),
                            (ROOT / "mailserver", [("digest_mail.py", "python")])):
        for _file, _line, message, _comments, _context in extract_from_dir(folder, methods):
            found.add(message[0] if isinstance(message, tuple) else message)
    assert "Hallo %(name)s," in found  # the digest's texts are extracted too
    return found


def test_every_marked_text_has_an_english_translation() -> None:
    with PO.open("rb") as source:
        catalog = read_po(source, locale="en")
    translated = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        translated[key] = (message, strings)
    marked = marked_messages()
    assert "Posteingang" in marked and "Zum Inhalt springen" in marked  # the extraction works
    missing = sorted(m for m in marked
                     if m not in translated or not all(translated[m][1])
                     or translated[m][0].fuzzy)
    assert not missing, ("untranslated webmail texts; run `make webmail-catalog` and fill in "
                         f"the msgstr in {PO.relative_to(ROOT)}: {missing}")
    for key, (_message, strings) in translated.items():
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == set(PLACEHOLDER.findall(key)), key


def test_translations_load_and_special_folders_have_names() -> None:
    translators = load_translations()
    german, english = translators["de"], translators["en"]
    assert [german.folder(n) for n in ("INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive")
            ] == ["Posteingang", "Gesendet", "Entwürfe", "Papierkorb", "Spam", "Archiv"]
    assert [english.folder(n) for n in ("INBOX", "Drafts", "Trash")] == ["Inbox", "Drafts",
                                                                       "Trash"]
    assert german.folder("Klasse 5a/Eltern") == english.folder("Klasse 5a/Eltern") \
        == "Klasse 5a/Eltern"
    assert english("Seite %(number)s von %(pages)s", number=2, pages=7) == "Page 2 of 7"


@pytest.mark.parametrize(("header", "chosen"), [
    ("", None), ("de-DE,de;q=0.9,en;q=0.8", "de"), ("en-US,en;q=0.9", "en"),
    ("fr-FR,fr;q=0.9,en;q=0.5,de;q=0.4", "en"), ("fr", None), ("de;q=0, en", "en"),
    ("en;q=0.3, de;q=0.7", "de"), ("*", None), ("en;q=abc, de", "de"),
])
def test_language_negotiation(header: str, chosen: str | None) -> None:
    assert negotiate(parse_accept_language(header)) == chosen


@given(st.text(max_size=300))
def test_accept_language_parser_takes_anything(header: str) -> None:
    tags = parse_accept_language(header)
    assert all(tag and tag == tag.lower() and len(tag) <= 35 for tag in tags)
    assert negotiate(tags) in (None, *i18n.LOCALES)


@given(st.lists(st.tuples(st.sampled_from(["de", "en", "fr", "en-gb", "de-at"]),
                          st.integers(min_value=1, max_value=1000)), max_size=6))
def test_the_highest_quality_wins(entries: list[tuple[str, int]]) -> None:
    header = ", ".join(f"{tag};q={q / 1000}" for tag, q in entries)
    tags = parse_accept_language(header)
    qualities = [q for _tag, q in sorted(entries, key=lambda e: -e[1])]
    assert len(tags) == len(entries) and qualities == sorted(qualities, reverse=True)


@pytest.mark.parametrize(("reason", "german"), [
    (_reason(replies.UNKNOWN_USER), "diese Adresse gibt es nicht"),
    (_reason(replies.DISABLED_MAILBOX), "dieses Postfach nimmt keine Nachrichten an"),
    (_reason(replies.EMPTY_GROUP), "diese Gruppe hat keine Mitglieder"),
    (_reason(replies.RELAY_DENIED), "an diese Adresse kann nicht gesendet werden"),
    (_reason(replies.OUTSIDE_TO_GROUP), "an diese Gruppe dürfen nur Mitglieder"),
    (_reason(replies.sender_not_owned("x@y.example")), "Sie dürfen nicht unter"),
    ("pupils may not write to addresses outside the school and its partner schools "
     "(outside.example)", "Schülerinnen und Schüler dürfen nicht an Adressen außerhalb der "
                          "Schule und ihrer Partnerschulen schreiben (outside.example)"),
    ("parent accounts may not write outside the school (x.example)", "Eltern dürfen nicht"),
    ("parents may only contact teachers and school staff", "Eltern dürfen nur den"),
    ("only the group's teachers may post to this group", "nur die Lehrkräfte"),
    ("not a valid address", "keine gültige Adresse"),
    ("the mailbox is full", "das Postfach des Empfängers ist voll"),
    ("something new from below", "abgelehnt: something new from below"),
])
def test_lower_layer_refusals_are_said_in_german_and_english(reason: str, german: str) -> None:
    translators = load_translations()
    assert refusal_text(translators["de"], reason).startswith(german)
    english = refusal_text(translators["en"], reason)
    assert english.isascii() or "outside.example" in english


def test_dates_read_as_people_of_each_language_write_them() -> None:
    import datetime as dt

    translators = load_translations()
    moment = dt.datetime(2026, 12, 5, 22, 7, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert translators["de"].when(moment) == "05.12.2026 22:07"
    assert translators["en"].when(moment).replace("\u202f", " ") == "Dec 5, 2026, 10:07 PM"
    assert translators["en"].when(None) == translators["de"].when(None) == ""


@given(st.datetimes(timezones=st.sampled_from([dt_timezone(dt_timedelta(hours=h))
                                               for h in (-12, -5, 0, 1, 2, 14)])))
def test_any_date_has_a_text_in_every_language(moment: object) -> None:
    translators = load_translations()
    for translator in translators.values():
        text = translator.when(moment)  # type: ignore[arg-type]
        assert str(moment.year) in text  # type: ignore[attr-defined]  # the sender's own zone

"""Reading and validating school CSV exports (no database)."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from directory.importer import GENERIC, ImportFileError, InvalidImportFile
from directory.importer.profiles import profile_named
from directory.importer.reading import read_csv
from directory.importer.records import group_name, validate
from directory.model import Role
from tests.support.properties import examples

HEADER = "external_id;first_name;last_name;role;class;courses;email;parent_of"


def records_of(text: str, encoding: str = "utf-8"):
    return validate(read_csv(text.encode(encoding)), GENERIC)


def test_windows_1252_with_semicolons() -> None:
    data = (HEADER + "\r\n1;Jürgen;Müßig;Schüler;5a;Ma LK1|Französisch;;\r\n").encode("cp1252")
    table = read_csv(data)
    assert (table.encoding, table.delimiter) == ("cp1252", ";")
    [record] = validate(table, GENERIC)
    assert (record.first_name, record.last_name, record.role) == ("Jürgen", "Müßig", Role.PUPIL)
    assert [c.name for c in record.classes] == ["5a"]
    assert [(c.name, c.display_name) for c in record.courses] == [
        ("ma-lk1", "Ma LK1"), ("franzoesisch", "Französisch")]


def test_utf8_with_bom_and_commas_and_quotes() -> None:
    text = ("\ufeffExternal_ID,Vorname,Nachname,Rolle,Klasse\n"
            '7,"Zoë","Weiß, geb. Groß",Lehrerin,"5a|5b"\n')
    table = read_csv(text.encode("utf-8"))
    assert (table.encoding, table.delimiter) == ("utf-8-sig", ",")
    [record] = validate(table, GENERIC)
    assert record.last_name == "Weiß, geb. Groß"
    assert record.role is Role.TEACHER
    assert [c.name for c in record.classes] == ["5a", "5b"]  # a teacher may lead two


def test_utf16_from_excel_unicode_text_with_tabs() -> None:
    text = "external_id\tfirst_name\tlast_name\trole\tclass\n1\tÖmer\tÖz\tSchüler\t6b\n"
    [record] = validate(read_csv(codecs.BOM_UTF16_LE + text.encode("utf-16-le")), GENERIC)
    assert (record.first_name, record.classes[0].name) == ("Ömer", "6b")


def test_decomposed_umlauts_are_composed() -> None:
    [record] = records_of(HEADER + "\n1;Ju\u0308rgen;Mu\u0308ller;pupil;5a;;;\n")
    assert record.first_name == "Jürgen"


def test_headers_and_roles_match_loosely() -> None:
    text = ("EXTERNAL ID;First-Name;last name;ROLE;Class;Geburtstag\n"
            "1;A;B;SCHUELER;5a;2014-01-01\n2;C;D;erziehungsberechtigter;;\n")
    records = records_of(text)
    assert [r.role for r in records] == [Role.PUPIL, Role.PARENT]


def test_line_numbers_count_blank_lines_and_multiline_fields() -> None:
    text = HEADER + '\n\n1;A;B;pupil;5a;;;\n"2";"C\nC";D;pupil;5a;;;\n3;;E;pupil;5a;;;\n'
    with pytest.raises(InvalidImportFile) as info:
        records_of(text)
    assert [str(e) for e in info.value.errors] == [
        "line 4: first_name contains control characters",
        "line 6: empty first_name",
    ]


def test_every_bad_row_is_named() -> None:
    text = "\n".join([
        HEADER,
        "1;Anna;Schmidt;pupil;5a;;;",          # 2 good
        "2;;Schmidt;pupil;5a;;;",              # 3 empty first name
        "3;Ben;Meier;Hausmeister;5a;;;",        # 4 unknown role
        "1;Cem;Kaya;pupil;5b;;;",              # 5 duplicate of line 2
        "4;Eva;Kaya;parent;;;;1|99",           # 6 parent_of 99 is not in the file
        "5;Tom;Kurz;pupil",                    # 7 too few fields
        "6;Ida;Lang;pupil;5a|5b;;;",           # 8 a pupil in two classes
        "7;Max;Roth;teacher;;;;1",             # 9 parent_of on a teacher
        "8;Uwe;Ost;parent;;;;4",               # 10 parent_of points at a parent
        "9;Pia;Nord;pupil;5a;;kein-mail;",     # 11 bad e-mail
        "10;Jan;Süd;admin;;;;",                # 12 admins are never imported
    ])
    with pytest.raises(InvalidImportFile) as info:
        records_of(text)
    lines = [e.line for e in info.value.errors]
    assert lines == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    reasons = {e.line: e.reason for e in info.value.errors}
    assert "unknown role 'Hausmeister'" in reasons[4]
    assert "duplicate external_id '1' (first on line 2)" in reasons[5]
    assert "parent_of '99'" in reasons[6]
    assert "missing class" in reasons[7]
    assert "line 6 is a parent" in reasons[10]
    assert str(info.value) == "10 bad rows, nothing imported"


def test_missing_required_column_names_the_header_line() -> None:
    with pytest.raises(InvalidImportFile) as info:
        records_of("external_id;first_name;last_name\n1;A;B\n")
    [error] = info.value.errors
    assert error.line == 1 and "role, class" in error.reason


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"\n \n", "empty"),
    (b";;;\n", "no header"),
    (b"a;b\x00;c\n", "NUL"),
    (b"\xef\xbb\xbfa;b\xff", "not valid UTF-8"),
    (b"a;b\x81\x8d", "neither UTF-8 nor Windows-1252"),
])
def test_unreadable_files(data: bytes, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        read_csv(data)


def test_group_names_are_transliterated_addresses() -> None:
    assert group_name("5A") == "5a"
    assert group_name("Ma-LK1") == "ma-lk1"
    assert group_name(" Französisch (Gk) ") == "franzoesisch-gk"


def test_unknown_profile() -> None:
    with pytest.raises(ImportFileError, match="unknown import profile 'magellan'"):
        profile_named("magellan")


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_raise_only_import_errors(data: bytes) -> None:
    try:
        validate(read_csv(data), GENERIC)
    except ImportFileError:
        pass


CSV_ALPHABET = st.sampled_from([
    *"ab5;,|\"\t\r\n äöüßÄ\x00\x85\u2028", "external_id", "first_name", "last_name",
    "role", "class", "parent_of", "Schüler", "Lehrer", "Eltern"])


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(CSV_ALPHABET, max_size=200), st.sampled_from(["utf-8", "cp1252", "utf-16"]))
def test_csv_like_text_raises_only_import_errors(parts: list[str], encoding: str) -> None:
    data = "".join(parts).encode(encoding, errors="replace")
    try:
        validate(read_csv(data), GENERIC)
    except ImportFileError:
        pass

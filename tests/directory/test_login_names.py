"""Login names from people's names: always a valid address, never a taken one."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from directory.addresses import LOCAL_PART_RE, is_valid_local_part
from directory.login_names import MAX_BASE_LENGTH, login_base, transliterate, unique_login

# Names as they come from school records: any unicode, with a bias towards
# letters, separators and the accents of European names.
names = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(categories=("L", "M", "Zs", "Pd", "Po", "Nd")), max_size=80),
    st.text(alphabet="aäÄoöÖuüÜßẞéÉèçñøØæÆœłŁđþıİ .-'", max_size=80),
)


@given(names, names)
@example("", "")
@example("...", "---")
@example("a" * 200, "b" * 200)
@example("x" * 55, "y")  # truncation right after the dot
@example("李", "小龍")
@example("\u0130", "\u1e9e")  # İ, ẞ
@example("ﬀ", "①")  # compatibility forms
def test_login_base_is_always_a_valid_ascii_local_part(first: str, last: str) -> None:
    base = login_base(first, last)
    assert base.isascii()
    assert LOCAL_PART_RE.match(base), base
    assert is_valid_local_part(base), base  # also no ".."
    assert 0 < len(base) <= MAX_BASE_LENGTH == 56


# Taken sets near the base: the base itself, numbered variants, and unrelated names.
@given(names, names, st.sets(st.integers(min_value=1, max_value=40), max_size=40),
       st.sets(st.text(max_size=8), max_size=5), st.booleans())
def test_unique_login_never_returns_a_taken_name(first: str, last: str, numbers: set[int],
                                                 others: set[str], base_taken: bool) -> None:
    base = login_base(first, last)
    taken = {f"{base}{n}" for n in numbers} | others | ({base} if base_taken else set())
    login = unique_login(base, taken)
    assert login not in taken
    assert login.startswith(base)
    assert is_valid_local_part(login) and len(login) <= 64
    if not base_taken:
        assert login == base
    else:  # the first free number from 2 on
        n = int(login.removeprefix(base))
        assert n >= 2 and all(f"{base}{k}" in taken for k in range(2, n))


def test_unique_login_numbers_from_two() -> None:
    assert unique_login("anna.meier", set()) == "anna.meier"
    assert unique_login("anna.meier", {"anna.meier"}) == "anna.meier2"
    assert unique_login("anna.meier", {"anna.meier", "anna.meier2", "anna.meier3"}) == \
        "anna.meier4"
    assert unique_login("anna.meier", {"anna.meier", "anna.meier3"}) == "anna.meier2"


@pytest.mark.parametrize(("first", "last", "login"), [
    ("Jürgen", "Müßig", "juergen.muessig"),
    ("Ärger", "Öztürk", "aerger.oeztuerk"),
    ("ÜBEL", "GROẞ", "uebel.gross"),
    ("Élodie", "Lefèvre", "elodie.lefevre"),
    ("François", "Garçon", "francois.garcon"),
    ("Núñez", "", "nunez"),
    ("", "Ørsted", "orsted"),  # the module's table: ø -> o (ICAO 9303 would say oe)
    ("Søren", "Kierkegaard", "soren.kierkegaard"),
    ("Ægir", "Œdipe", "aegir.oedipe"),
    ("Łukasz", "Đorđević", "lukasz.dordevic"),
    ("Þór", "Yılmaz", "thor.yilmaz"),
    ("İbrahim", "Çelik", "ibrahim.celik"),
    ("Anna-Lena", "Meier", "anna-lena.meier"),
    ("Anna Lena", "von der Heide", "anna-lena.von-der-heide"),
    ("  Max ", " O'Brien ", "max.o-brien"),
    ("Jean--Luc", "Picard!", "jean-luc.picard"),
    ("Max", "", "max"),
    ("", "Mustermann", "mustermann"),
    ("", "", "user"),
    ("李", "小龍", "user"),
    ("???", "!!!", "user"),
    ("Mia", "2", "mia.2"),
])
def test_login_examples(first: str, last: str, login: str) -> None:
    assert login_base(first, last) == login


def test_long_names_are_cut_to_56_characters_without_a_dangling_separator() -> None:
    base = login_base("Maximilian-Alexander-Friedrich", "von Hohenzollern-Sigmaringen-Wettin")
    assert len(base) <= 56 and base[-1].isalnum()
    assert base.startswith("maximilian-alexander-friedrich.von-hohenzollern")
    assert login_base("a" * 55, "bcd") == "a" * 55  # cut at the dot, dot dropped


def test_transliterate_keeps_case_and_drops_what_has_no_ascii_form() -> None:
    assert transliterate("Ärztin Ökonom Übung straße") == "Aerztin Oekonom Uebung strasse"
    assert transliterate("日本") == ""


def test_decomposed_umlauts_give_the_same_login() -> None:
    composed = ("Jürgen", "Müßig")
    decomposed = tuple(unicodedata.normalize("NFD", part) for part in composed)
    assert decomposed != composed
    assert login_base(*decomposed) == login_base(*composed) == "juergen.muessig"

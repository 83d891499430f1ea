"""The webmail's vacation block in Sieve scripts: what the form writes is what it
reads back, and a script of the person's own keeps every byte of its rules."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from mailserver.sieve.checks import compile_script
from mailserver.sieve.managed_vacation import (
    VacationRule,
    read,
    with_block,
    without_block,
)

# What a form field can carry: any text without NUL and lone CR (the form
# sends CRLF or LF line ends; the settings page keeps LF).
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
                max_size=200)
rules = st.builds(
    VacationRule, body=texts.filter(lambda t: t.strip() != ""),
    subject=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=80),
    days=st.integers(1, 30), until=st.none() | st.dates(dt.date(2000, 1, 1), dt.date(2999, 1, 1)))

OWN = ('require ["fileinto", "imap4flags"];\r\n'
       '# Elternpost\r\n'
       'if address :contains "from" "eltern" { fileinto "Eltern"; stop; }\r\n'
       'addflag "\\\\Seen";\r\n')


@given(rules)
def test_the_form_reads_back_what_it_wrote(rule: VacationRule) -> None:
    script = with_block("", rule)
    compile_script(script)
    assert read(script) == (rule, True)


@given(rules, rules)
def test_a_script_of_ones_own_keeps_its_rules(rule: VacationRule, other: VacationRule) -> None:
    script = with_block(OWN, rule)
    program = compile_script(script)
    # The block runs first: the vacation before the person's own commands.
    names = [call.name for call in program.commands if call.name != "require"]
    assert names[0] in ("vacation", "if") and names[-2:] == ["if", "addflag"]
    assert read(script) == (rule, True)
    again = with_block(script, other)  # saved once more: one block, the new one
    assert again.count("# BEGIN Schulhof webmail vacation") == 1
    assert read(again) == (other, True)
    assert without_block(again) == OWN
    assert with_block(again, None) == OWN


def test_a_vacation_of_ones_own_is_reported_as_such() -> None:
    own = 'require "vacation";\nif header :contains "to" "x" { vacation :days 2 "Urlaub"; }\n'
    assert read(own) == (VacationRule("Urlaub", days=2), False)
    assert read(with_block(own, VacationRule("Form"))) == (VacationRule("Urlaub", days=2), False)


def test_no_script_or_an_invalid_one_has_no_vacation() -> None:
    assert read("") == (None, True)
    assert read("if true {") == (None, True)
    assert read(OWN) == (None, True)


def test_a_script_without_a_final_line_end() -> None:
    script = with_block('require "fileinto";\nfileinto "X";', VacationRule("Weg"))
    compile_script(script)
    assert script.endswith('fileinto "X";\r\n') or script.endswith('fileinto "X";')
    assert read(script) == (VacationRule("Weg"), True)

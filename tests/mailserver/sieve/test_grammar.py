"""Sieve syntax and checks (RFC 5228 8 and 3): examples, refusals with lines, properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailserver.sieve.checks import compile_script
from mailserver.sieve.grammar import (
    MAX_DEPTH,
    MAX_SCRIPT_BYTES,
    Command,
    SieveSyntaxError,
    StringList,
    Tag,
    parse,
)
from mailserver.sieve.grammar import (
    Test as SieveTest,
)
from tests.support.properties import examples

RFC_EXAMPLE = b"""# RFC 5228 9, a little adapted
require ["fileinto", "reject"];
if header :is "Sender" "owner-ietf-mtg@ietf.org" {
    fileinto "ietf";
} elsif address :DOMAIN :is ["From", "To"] "example.com" {
    keep;               # keep in "In" mailbox
} elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
               header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"]) {
    reject text:
Nicht erwuenscht.
..dotted
.
;
} else {
    fileinto "INBOX.Other";  /* a comment
    over two lines */
}
"""


def test_rfc_example_parses_into_a_tree() -> None:
    commands = parse(RFC_EXAMPLE)
    assert [c.name for c in commands] == ["require", "if", "elsif", "elsif", "else"]
    assert commands[0].arguments == (StringList(("fileinto", "reject"), bracketed=True),)
    elsif = commands[2]
    assert elsif.tests[0].arguments[:2] == (Tag("domain"), Tag("is"))
    anyof = commands[3].tests[0]
    assert anyof.name == "anyof" and [t.name for t in anyof.tests] == ["not", "header"]
    reject = commands[3].block
    assert reject is not None
    assert reject[0].arguments == (StringList(("Nicht erwuenscht.\r\n.dotted\r\n",)),)
    assert commands[4].line == 16
    program = compile_script(RFC_EXAMPLE)
    assert program.extensions == {"fileinto", "reject"}


def test_numbers_quoted_strings_and_escapes() -> None:
    [command] = parse('if size :over 10K { discard; }\n')
    assert command.tests[0].arguments == (Tag("over"), 10 * 1024)
    [command] = parse(r'fileinto "a\"b\\c\d";')
    assert command.arguments == (StringList(('a"b\\cd',)),)


@pytest.mark.parametrize(("script", "line", "reason"), [
    ('fileinto "x";', 1, 'needs require "fileinto"'),
    ('require "fileinto";\n\nif true {\n  fileinto :bogus "x";\n}', 4, "no tag ':bogus'"),
    ('keep;\nrequire "fileinto";', 2, "require must come before"),
    ('else { keep; }', 1, "without 'if'"),
    ('if true keep;', 1, "takes no test"),
    ('if header :is "a" { keep; }', 1, "takes 2 argument"),
    ('if header :is :contains "a" "b" { keep; }', 1, "conflicting tags"),
    ('require "vacation";\nvacation :days 0 "x";', 2, ":days must be at least 1"),
    ('redirect "not an address";', 1, "invalid address"),
    ('require "bogus";', 1, 'extension "bogus" is not supported'),
    ('keep', 1, "expected ';'"),
    ('"just a string";', 1, "expected a command"),
    ('fileinto "unterminated;', 1, "unterminated string"),
    ('/* open comment', 1, "unterminated /* comment"),
    ('keep;\n\n  @', 3, "unexpected character"),
    ('require "body";\nif body :comparator "i;bogus" :is "x" { keep; }', 2,
     "unknown comparator"),
    ('if size 10 { keep; }', 1, "needs one of :over :under"),
    ('redirect "a@b.de";\nredirect "c@b.de";\nredirect "d@b.de";\nredirect "e@b.de";\n'
     'redirect "f@b.de";', 5, "more than 4 redirects"),
])
def test_bad_scripts_are_refused_with_line_and_reason(script: str, line: int,
                                                      reason: str) -> None:
    with pytest.raises(SieveSyntaxError) as refused:
        compile_script(script)
    assert refused.value.line == line
    assert reason in refused.value.reason


def test_limits_deep_nesting_huge_strings_size_and_bad_utf8() -> None:
    deep = "if true {" * (MAX_DEPTH + 5) + "keep;" + "}" * (MAX_DEPTH + 5)
    with pytest.raises(SieveSyntaxError, match="nested deeper"):
        compile_script(deep)
    nested_tests = "if " + "not " * 1000 + "true { keep; }"
    with pytest.raises(SieveSyntaxError, match="nested deeper"):
        compile_script(nested_tests)
    with pytest.raises(SieveSyntaxError, match="string longer"):
        compile_script('require "fileinto"; fileinto "' + "x" * 40_000 + '";')
    with pytest.raises(SieveSyntaxError, match="larger than"):
        compile_script(b"#" * (MAX_SCRIPT_BYTES + 1))
    with pytest.raises(SieveSyntaxError) as bad:
        compile_script(b'keep;\nfileinto "\xff\xfe";')
    assert bad.value.line == 2 and "UTF-8" in bad.value.reason


# --- properties -------------------------------------------------------------------------
_names = st.sampled_from(["keep", "discard", "stop", "fileinto", "foo", "x_1"])
_strings = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                   max_size=20)
_arguments: st.SearchStrategy[Tag | int | StringList] = st.one_of(
    st.builds(Tag, st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)),
    st.integers(0, 10**6),
    st.builds(lambda v: StringList((v,)), _strings),
    st.builds(lambda vs: StringList(tuple(vs), bracketed=True),
              st.lists(_strings, min_size=1, max_size=3)))
_tests: st.SearchStrategy[SieveTest] = st.recursive(
    st.builds(lambda n, a: SieveTest(n, tuple(a), (), 1), _names, st.lists(_arguments, max_size=3)),
    lambda inner: st.builds(lambda n, a, t: SieveTest(n, tuple(a), tuple(t), 1), _names,
                            st.lists(_arguments, max_size=2), st.lists(inner, min_size=2,
                                                                       max_size=3)),
    max_leaves=6)
_commands: st.SearchStrategy[Command] = st.recursive(
    st.builds(lambda n, a: Command(n, tuple(a), (), None, 1), _names,
              st.lists(_arguments, max_size=3)),
    lambda inner: st.builds(lambda n, t, b: Command(n, (), (t,), tuple(b), 1), _names,
                            _tests, st.lists(inner, max_size=3)),
    max_leaves=8)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _argument(argument: Tag | int | StringList) -> str:
    if isinstance(argument, Tag):
        return ":" + argument.name
    if isinstance(argument, int):
        return str(argument)
    if argument.bracketed:
        return "[" + ", ".join(_quote(v) for v in argument.values) + "]"
    return _quote(argument.values[0])


def _test(test: SieveTest) -> str:
    text = " ".join([test.name, *map(_argument, test.arguments)])
    if test.tests:
        text += " (" + ", ".join(map(_test, test.tests)) + ")"
    return text


def _command(command: Command) -> str:
    text = " ".join([command.name, *map(_argument, command.arguments)])
    if command.tests:
        text += " " + _test(command.tests[0])
    if command.block is None:
        return text + ";"
    return text + " {\n" + "\n".join(map(_command, command.block)) + "\n}"


def _without_lines(node: Command | SieveTest) -> object:
    if isinstance(node, SieveTest):
        return (node.name, node.arguments, tuple(map(_without_lines, node.tests)))
    return (node.name, node.arguments, tuple(map(_without_lines, node.tests)),
            None if node.block is None else tuple(map(_without_lines, node.block)))


# Nested command trees are slow to draw on a loaded machine; the draw time is not the test.
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_commands, max_size=4))
def test_serialised_trees_parse_back_to_the_same_tree(commands: list[Command]) -> None:
    text = "\n".join(map(_command, commands))
    assert tuple(map(_without_lines, parse(text))) == tuple(map(_without_lines, commands))


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_fail_with_a_line(data: bytes) -> None:
    try:
        compile_script(data)
    except SieveSyntaxError as error:
        assert error.line >= 1 and error.reason


_fragments = st.sampled_from(['require', '"fileinto"', '[', ']', ',', ';', '{', '}', '(', ')',
                              'if', 'elsif', 'else', 'header', ':is', ':matches', '"x"',
                              'fileinto', 'keep', 'true', 'not', 'anyof', '10K', 'text:\n',
                              '\n.\n', '#c\n', '/*', '*/', 'vacation', ':days', 'set'])


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(_fragments, max_size=40))
def test_token_soup_parses_or_fails_with_a_line(parts: list[str]) -> None:
    try:
        compile_script(" ".join(parts))
    except SieveSyntaxError as error:
        assert error.line >= 1 and error.reason

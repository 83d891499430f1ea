"""Which Sieve commands and tests we run, and the check of a parsed script
against them: known names, required extensions (RFC 5228 3.2), argument
shapes, tag conflicts, control structure.  The result is a ``Program`` of
``Call`` nodes whose tags and positional arguments are already sorted out,
so the evaluator (``mailserver.sieve.evaluate``) never meets a malformed
script.  Errors are ``SieveSyntaxError`` with the line, as for syntax.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from mailserver.sieve.grammar import (
    Argument,
    Command,
    SieveSyntaxError,
    StringList,
    Tag,
    Test,
    parse,
)

# RFC 5228, 5229 (variables), 5230 (vacation), 5231 (relational), 5232
# (imap4flags), 5173 (body), 5260 (date), 3894 (copy), 5429 (reject, ereject).
EXTENSIONS = frozenset({
    "fileinto", "reject", "ereject", "envelope", "body", "variables", "imap4flags",
    "copy", "date", "relational", "vacation", "comparator-i;ascii-numeric",
    "comparator-i;octet", "comparator-i;ascii-casemap", "encoded-character"})
COMPARATORS = {"i;octet": None, "i;ascii-casemap": None,
               "i;ascii-numeric": "comparator-i;ascii-numeric"}
RELATIONS = frozenset({"gt", "ge", "lt", "le", "eq", "ne"})
DATE_PARTS = frozenset({"year", "month", "day", "date", "julian", "hour", "minute", "second",
                        "time", "iso8601", "std11", "zone", "weekday"})
MAX_REDIRECTS = 4

_MATCH = {"is": None, "contains": None, "matches": None, "value": "string", "count": "string"}
_COMPARATOR = {"comparator": "string"}
_ADDRESS_PART = {"all": None, "localpart": None, "domain": None}
_MATCH_GROUPS = (frozenset(_MATCH), frozenset({"comparator"}))
_TAG_EXTENSIONS = {"copy": "copy", "flags": "imap4flags", "value": "relational",
                   "count": "relational"}


@dataclass(frozen=True)
class Spec:
    positional: tuple[str, ...]  # "string", "strings" or "number" each
    tags: Mapping[str, str | None] = field(default_factory=dict)
    groups: tuple[frozenset[str], ...] = ()  # at most one tag of each group
    extension: str | None = None
    tests: str = "none"  # "none", "one" or "list"
    block: bool = False
    optional_leading: int = 0  # imap4flags' optional variable name in front
    required_group: frozenset[str] = frozenset()


_FLAG_ACTION = Spec(("string", "strings"), extension="imap4flags", optional_leading=1)
COMMANDS: dict[str, Spec] = {
    "require": Spec(("strings",)),
    "if": Spec((), tests="one", block=True),
    "elsif": Spec((), tests="one", block=True),
    "else": Spec((), block=True),
    "stop": Spec(()),
    "keep": Spec((), {"flags": "strings"}),
    "discard": Spec(()),
    "fileinto": Spec(("string",), {"copy": None, "flags": "strings"}, extension="fileinto"),
    "redirect": Spec(("string",), {"copy": None}),
    "reject": Spec(("string",), extension="reject"),
    "ereject": Spec(("string",), extension="ereject"),
    "vacation": Spec(("string",), {"days": "number", "subject": "string", "from": "string",
                                   "addresses": "strings", "mime": None, "handle": "string"},
                     extension="vacation"),
    "setflag": _FLAG_ACTION, "addflag": _FLAG_ACTION, "removeflag": _FLAG_ACTION,
    "set": Spec(("string", "string"), {"lower": None, "upper": None, "lowerfirst": None,
                                       "upperfirst": None, "quotewildcard": None,
                                       "length": None},
                (frozenset({"lower", "upper"}), frozenset({"lowerfirst", "upperfirst"})),
                extension="variables"),
}
TESTS: dict[str, Spec] = {
    "address": Spec(("strings", "strings"), {**_MATCH, **_COMPARATOR, **_ADDRESS_PART},
                    (*_MATCH_GROUPS, frozenset(_ADDRESS_PART))),
    "envelope": Spec(("strings", "strings"), {**_MATCH, **_COMPARATOR, **_ADDRESS_PART},
                     (*_MATCH_GROUPS, frozenset(_ADDRESS_PART)), extension="envelope"),
    "header": Spec(("strings", "strings"), {**_MATCH, **_COMPARATOR}, _MATCH_GROUPS),
    "exists": Spec(("strings",)),
    "size": Spec(("number",), {"over": None, "under": None},
                 (frozenset({"over", "under"}),), required_group=frozenset({"over", "under"})),
    "true": Spec(()), "false": Spec(()),
    "not": Spec((), tests="one"),
    "allof": Spec((), tests="list"), "anyof": Spec((), tests="list"),
    "body": Spec(("strings",), {**_MATCH, **_COMPARATOR, "raw": None, "content": "strings",
                                "text": None},
                 (*_MATCH_GROUPS, frozenset({"raw", "content", "text"})), extension="body"),
    "date": Spec(("string", "string", "strings"),
                 {**_MATCH, **_COMPARATOR, "zone": "string", "originalzone": None},
                 (*_MATCH_GROUPS, frozenset({"zone", "originalzone"})), extension="date"),
    "currentdate": Spec(("string", "strings"), {**_MATCH, **_COMPARATOR, "zone": "string"},
                        _MATCH_GROUPS, extension="date"),
    "string": Spec(("strings", "strings"), {**_MATCH, **_COMPARATOR}, _MATCH_GROUPS,
                   extension="variables"),
    "hasflag": Spec(("strings", "strings"), {**_MATCH, **_COMPARATOR}, _MATCH_GROUPS,
                    extension="imap4flags", optional_leading=1),
}
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


@dataclass(frozen=True)
class Call:
    """A checked command or test: tags by name, positional arguments in order."""

    name: str
    tags: Mapping[str, Argument | None]
    positional: tuple[Argument, ...]
    tests: tuple[Call, ...]
    block: tuple[Call, ...] | None
    line: int
    # (match type, relation, comparator) of a test, decided once at check time.
    matching: tuple[str, str, str] = ("is", "eq", "i;ascii-casemap")

    def string(self, index: int) -> str:
        value = self.positional[index]
        assert isinstance(value, StringList)
        return value.values[0]

    def strings(self, index: int) -> tuple[str, ...]:
        value = self.positional[index]
        assert isinstance(value, StringList)
        return value.values

    def tag_string(self, name: str, default: str = "") -> str:
        value = self.tags.get(name)
        return value.values[0] if isinstance(value, StringList) else default

    def tag_strings(self, name: str) -> tuple[str, ...]:
        value = self.tags.get(name)
        return value.values if isinstance(value, StringList) else ()


@dataclass(frozen=True)
class Program:
    """A checked script: its commands, the extensions it requires, and the
    literal redirect targets (line, address) for the upload's policy check."""

    commands: tuple[Call, ...]
    extensions: frozenset[str]
    redirects: tuple[tuple[int, str], ...]


def _argument_kind(argument: Argument) -> str:
    if isinstance(argument, int):
        return "number"
    if isinstance(argument, StringList):
        return "strings" if argument.bracketed and len(argument.values) != 1 else "string"
    return "tag"


def _fits(kind: str, argument: Argument) -> bool:
    have = _argument_kind(argument)
    return have == kind or (kind == "strings" and have == "string")


class _Checker:
    def __init__(self) -> None:
        self.extensions: set[str] = set()
        self.redirects: list[tuple[int, str]] = []

    def node(self, node: Command | Test, specs: Mapping[str, Spec], what: str) -> Call:
        spec = specs.get(node.name)
        if spec is None:
            raise SieveSyntaxError(node.line, f"unknown {what} '{node.name}'")
        if spec.extension and spec.extension not in self.extensions:
            raise SieveSyntaxError(node.line, f"'{node.name}' needs require \"{spec.extension}\"")
        tags: dict[str, Argument | None] = {}
        positional: list[Argument] = []
        arguments = list(node.arguments)
        i = 0
        while i < len(arguments):
            argument = arguments[i]
            i += 1
            if not isinstance(argument, Tag):
                positional.append(argument)
                continue
            if positional:
                raise SieveSyntaxError(node.line, f"tag ':{argument.name}' after the "
                                                  f"positional arguments of '{node.name}'")
            name = argument.name
            if name not in spec.tags:
                raise SieveSyntaxError(node.line, f"'{node.name}' has no tag ':{name}'")
            needs = _TAG_EXTENSIONS.get(name)
            if needs and needs not in self.extensions:
                raise SieveSyntaxError(node.line, f"':{name}' needs require \"{needs}\"")
            if name in tags:
                raise SieveSyntaxError(node.line, f"tag ':{name}' given twice")
            kind = spec.tags[name]
            value: Argument | None = None
            if kind is not None:
                if i >= len(arguments) or not _fits(kind, arguments[i]):
                    raise SieveSyntaxError(node.line, f"':{name}' needs a {kind} argument")
                value = arguments[i]
                i += 1
            tags[name] = value
        for group in spec.groups:
            if len(group & tags.keys()) > 1:
                raise SieveSyntaxError(node.line, "conflicting tags "
                                       + " ".join(sorted(f":{t}" for t in group & tags.keys())))
        if spec.required_group and not spec.required_group & tags.keys():
            raise SieveSyntaxError(node.line, f"'{node.name}' needs one of "
                                   + " ".join(sorted(f":{t}" for t in spec.required_group)))
        expected = spec.positional
        if spec.optional_leading and len(positional) == len(expected) - spec.optional_leading:
            expected = expected[spec.optional_leading:]
        if len(positional) != len(expected):
            raise SieveSyntaxError(node.line, f"'{node.name}' takes {len(expected)} "
                                              f"argument(s), not {len(positional)}")
        for kind, argument in zip(expected, positional, strict=True):
            if not _fits(kind, argument):
                raise SieveSyntaxError(node.line, f"'{node.name}' expects a {kind} argument")
        self._check_values(node, tags, positional)
        tests = node.tests
        if spec.tests == "none" and tests:
            raise SieveSyntaxError(node.line, f"'{node.name}' takes no test")
        if spec.tests == "one" and (len(tests) != 1 or _is_list(node)):
            raise SieveSyntaxError(node.line, f"'{node.name}' needs exactly one test")
        if spec.tests == "list" and not _is_list(node):
            raise SieveSyntaxError(node.line, f"'{node.name}' needs a test list in ( )")
        checked_tests = tuple(self.node(t, TESTS, "test") for t in tests)
        block: tuple[Call, ...] | None = None
        if isinstance(node, Command):
            if spec.block and node.block is None:
                raise SieveSyntaxError(node.line, f"'{node.name}' needs a block {{ }}")
            if not spec.block and node.block is not None:
                raise SieveSyntaxError(node.line, f"'{node.name}' takes no block")
            if node.block is not None:
                block = self.commands(node.block, top=False)
        return Call(node.name, tags, tuple(positional), checked_tests, block, node.line,
                    _matching(tags))

    def _check_values(self, node: Command | Test, tags: Mapping[str, Argument | None],
                      positional: list[Argument]) -> None:
        comparator = tags.get("comparator")
        if isinstance(comparator, StringList):
            name = comparator.values[0].lower()
            if name not in COMPARATORS:
                raise SieveSyntaxError(node.line, f"unknown comparator \"{name}\"")
            needs = COMPARATORS[name]
            if needs and needs not in self.extensions:
                raise SieveSyntaxError(node.line, f"comparator needs require \"{needs}\"")
        for relational in ("value", "count"):
            value = tags.get(relational)
            if isinstance(value, StringList) and value.values[0].lower() not in RELATIONS:
                raise SieveSyntaxError(node.line, f"unknown relation \"{value.values[0]}\"")
        if node.name in ("date", "currentdate"):
            part = positional[-2]
            assert isinstance(part, StringList)
            if part.values[0].lower() not in DATE_PARTS:
                raise SieveSyntaxError(node.line, f"unknown date part \"{part.values[0]}\"")
        if node.name == "set":
            variable = positional[0]
            assert isinstance(variable, StringList)
            if not _VARIABLE_NAME.match(variable.values[0]):
                raise SieveSyntaxError(node.line,
                                       f"bad variable name \"{variable.values[0]}\"")
        if node.name == "redirect":
            target = positional[0]
            assert isinstance(target, StringList)
            address = target.values[0]
            if "${" not in address:
                if not _looks_like_address(address):
                    raise SieveSyntaxError(node.line, f"redirect to an invalid address "
                                                      f"\"{address[:80]}\"")
                self.redirects.append((node.line, address.strip()))
                if len(self.redirects) > MAX_REDIRECTS:
                    raise SieveSyntaxError(node.line,
                                           f"more than {MAX_REDIRECTS} redirects")
        if node.name == "vacation":
            days = tags.get("days")
            if isinstance(days, int) and days < 1:
                raise SieveSyntaxError(node.line, ":days must be at least 1")

    def commands(self, commands: tuple[Command, ...], *, top: bool) -> tuple[Call, ...]:
        out: list[Call] = []
        requires_allowed = top
        previous = ""
        for command in commands:
            if command.name == "require":
                if not requires_allowed:
                    raise SieveSyntaxError(command.line,
                                           "require must come before every other command")
                call = self.node(command, COMMANDS, "command")
                for name in call.strings(0):
                    if name.lower() not in EXTENSIONS:
                        raise SieveSyntaxError(command.line,
                                               f"extension \"{name}\" is not supported")
                    self.extensions.add(name.lower())
                out.append(call)
                continue
            requires_allowed = False
            if command.name in ("elsif", "else") and previous not in ("if", "elsif"):
                raise SieveSyntaxError(command.line, f"'{command.name}' without 'if'")
            out.append(self.node(command, COMMANDS, "command"))
            previous = command.name
        return tuple(out)


def _matching(tags: Mapping[str, Argument | None]) -> tuple[str, str, str]:
    """RFC 5228 2.7.1 and 2.7.3 defaults: ``:is`` with ``i;ascii-casemap``; RFC 5231 4.2:
    ``:count`` compares numbers."""
    match_type = next((t for t in _MATCH if t in tags), "is")
    relation = "eq"
    value = tags.get(match_type)
    if isinstance(value, StringList):
        relation = value.values[0].lower()
    comparator = tags.get("comparator")
    if isinstance(comparator, StringList):
        name = comparator.values[0].lower()
    else:
        name = "i;ascii-numeric" if match_type == "count" else "i;ascii-casemap"
    return match_type, relation, name


def _is_list(node: Command | Test) -> bool:
    # The parser does not keep "( )" apart from a single test; a list is
    # recognised by a test count other than one, and anyof/allof always list.
    return len(node.tests) != 1 or node.name in ("allof", "anyof")


def _looks_like_address(address: str) -> bool:
    address = address.strip()
    local, at, domain = address.rpartition("@")
    return (bool(at and local and domain) and "." in domain and len(address) <= 320
            and not any(c in address for c in " \t\r\n<>,;\"\\()"))


def compile_script(script: bytes | str) -> Program:
    """Parse and check ``script`` (RFC 5228 2 and 3): a ``Program`` or ``SieveSyntaxError``."""
    checker = _Checker()
    commands = checker.commands(parse(script), top=True)
    return Program(commands, frozenset(checker.extensions), tuple(checker.redirects))

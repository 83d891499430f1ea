"""Sieve syntax (RFC 5228 8): from script text to a tree of commands and tests.

Pure: no I/O, no knowledge of which commands exist (``mailserver.sieve.checks``
does that).  Limits are enforced while reading so a hostile script cannot
make the parser recurse or allocate without bound: nesting depth, string
length and the number of nodes.  Every error names its line.

We use our own parser rather than ``sievelib``'s: the evaluator needs a typed
tree with line numbers, and the limits above must hold inside the parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SCRIPT_BYTES = 64 * 1024
MAX_DEPTH = 24
MAX_STRING = 32 * 1024
MAX_NODES = 4000


class SieveSyntaxError(ValueError):
    """A script that is not valid Sieve; ``line`` is 1-based."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Tag:
    """``:name`` (RFC 5228 2.6.2), stored lower-case without the colon."""

    name: str


@dataclass(frozen=True)
class StringList:
    """A string or a string list (RFC 5228 2.4.2); ``bracketed`` if written ``[...]``."""

    values: tuple[str, ...]
    bracketed: bool = False


Argument = Tag | int | StringList


@dataclass(frozen=True)
class Test:
    name: str
    arguments: tuple[Argument, ...]
    tests: tuple[Test, ...]
    line: int


@dataclass(frozen=True)
class Command:
    name: str
    arguments: tuple[Argument, ...]
    tests: tuple[Test, ...]
    block: tuple[Command, ...] | None
    line: int


_QUANTIFIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r\n]+)
      | (?P<hash>\#[^\n]*)
      | (?P<bracket>/\*)
      | (?P<text>text:[ \t]*(?:\#[^\n]*)?\r?\n)
      | (?P<quoted>")
      | (?P<number>[0-9]+[KkMmGg]?)
      | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[\[\](),;{}])
    """, re.VERBOSE)


@dataclass(frozen=True)
class _Token:
    kind: str  # ident, tag, number, string, punct, end
    value: str | int
    line: int


def _tokens(text: str) -> list[_Token]:
    """RFC 5228 8.1 lexical tokens, comments and white space dropped."""
    out: list[_Token] = []
    pos, line, size = 0, 1, len(text)
    while pos < size:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise SieveSyntaxError(line, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind == "bracket":
            end = text.find("*/", m.end())
            if end < 0:
                raise SieveSyntaxError(line, "unterminated /* comment")
            line += text.count("\n", pos, end + 2)
            pos = end + 2
            continue
        if kind == "quoted":
            value, pos, lines = _quoted(text, m.end(), line)
            out.append(_Token("string", value, line))
            line += lines
            continue
        if kind == "text":
            start = line
            value, pos, lines = _multiline(text, m.end(), line + 1)
            out.append(_Token("string", value, start))
            line += 1 + lines
            continue
        word = m.group()
        if kind == "number":
            digits, unit = (word[:-1], word[-1].lower()) if word[-1].isalpha() else (word, "")
            if len(digits) > 12:
                raise SieveSyntaxError(line, "number too large")
            out.append(_Token("number", int(digits) * _QUANTIFIERS.get(unit, 1), line))
        elif kind == "tag":
            out.append(_Token("tag", word[1:].lower(), line))
        elif kind == "ident":
            out.append(_Token("ident", word.lower(), line))
        elif kind == "punct":
            out.append(_Token("punct", word, line))
        line += word.count("\n")
        pos = m.end()
        if len(out) > MAX_NODES * 4:
            raise SieveSyntaxError(line, "script too long")
    out.append(_Token("end", "", line))
    return out


def _quoted(text: str, pos: int, line: int) -> tuple[str, int, int]:
    """RFC 5228 2.4.2: ``\\"`` and ``\\\\`` escape; any other ``\\x`` is just ``x``."""
    chars: list[str] = []
    lines = 0
    size = len(text)
    while pos < size:
        c = text[pos]
        if c == '"':
            return "".join(chars), pos + 1, lines
        if c == "\\" and pos + 1 < size:
            pos += 1
            c = text[pos]
        if c == "\n":
            lines += 1
        chars.append(c)
        pos += 1
        if len(chars) > MAX_STRING:
            raise SieveSyntaxError(line, f"string longer than {MAX_STRING} characters")
    raise SieveSyntaxError(line, "unterminated string")


def _multiline(text: str, pos: int, line: int) -> tuple[str, int, int]:
    """RFC 5228 2.4.2 multi-line string: up to a line of a lone ``.``; ``..`` unstuffed."""
    lines: list[str] = []
    count = 0
    total = 0
    while True:
        end = text.find("\n", pos)
        if end < 0:
            raise SieveSyntaxError(line, "multi-line string without the closing '.' line")
        raw = text[pos:end].removesuffix("\r")
        pos = end + 1
        count += 1
        if raw == ".":
            return "".join(lines), pos, count
        if raw.startswith(".."):
            raw = raw[1:]
        total += len(raw) + 2
        if total > MAX_STRING:
            raise SieveSyntaxError(line, f"string longer than {MAX_STRING} characters")
        lines.append(raw + "\r\n")


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._i = 0
        self._nodes = 0

    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _next(self) -> _Token:
        token = self._tokens[self._i]
        if token.kind != "end":
            self._i += 1
        return token

    def _is(self, punct: str) -> bool:
        token = self._peek()
        return token.kind == "punct" and token.value == punct

    def _expect(self, punct: str, what: str) -> None:
        token = self._next()
        if token.kind != "punct" or token.value != punct:
            raise SieveSyntaxError(token.line, f"expected {what}, found {_describe(token)}")

    def _count(self, line: int, depth: int) -> None:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise SieveSyntaxError(line, "script has too many commands and tests")
        if depth > MAX_DEPTH:
            raise SieveSyntaxError(line, f"nested deeper than {MAX_DEPTH} levels")

    def commands(self, depth: int) -> tuple[Command, ...]:
        out: list[Command] = []
        while True:
            token = self._peek()
            if token.kind == "end" or (token.kind == "punct" and token.value == "}"):
                return tuple(out)
            out.append(self.command(depth))

    def command(self, depth: int) -> Command:
        token = self._next()
        if token.kind != "ident":
            raise SieveSyntaxError(token.line, f"expected a command, found {_describe(token)}")
        self._count(token.line, depth)
        arguments, tests = self.arguments(depth)
        if self._is(";"):
            self._next()
            return Command(str(token.value), arguments, tests, None, token.line)
        if self._is("{"):
            self._next()
            block = self.commands(depth + 1)
            self._expect("}", "'}'")
            return Command(str(token.value), arguments, tests, block, token.line)
        raise SieveSyntaxError(self._peek().line,
                               f"expected ';' or '{{' after {token.value}, "
                               f"found {_describe(self._peek())}")

    def arguments(self, depth: int) -> tuple[tuple[Argument, ...], tuple[Test, ...]]:
        arguments: list[Argument] = []
        while True:
            token = self._peek()
            if token.kind == "tag":
                self._next()
                arguments.append(Tag(str(token.value)))
            elif token.kind == "number":
                self._next()
                arguments.append(int(token.value))
            elif token.kind == "string":
                self._next()
                arguments.append(StringList((str(token.value),)))
            elif token.kind == "punct" and token.value == "[":
                arguments.append(self.string_list())
            else:
                break
        if self._is("("):
            self._next()
            tests = [self.test(depth + 1)]
            while self._is(","):
                self._next()
                tests.append(self.test(depth + 1))
            self._expect(")", "')' or ','")
            return tuple(arguments), tuple(tests)
        if self._peek().kind == "ident":
            return tuple(arguments), (self.test(depth + 1),)
        return tuple(arguments), ()

    def string_list(self) -> StringList:
        self._next()  # [
        values: list[str] = []
        while True:
            token = self._next()
            if token.kind != "string":
                raise SieveSyntaxError(token.line,
                                       f"expected a string in the list, found {_describe(token)}")
            values.append(str(token.value))
            if len(values) > MAX_NODES:
                raise SieveSyntaxError(token.line, "string list too long")
            if self._is(","):
                self._next()
                continue
            self._expect("]", "']' or ','")
            return StringList(tuple(values), bracketed=True)

    def test(self, depth: int) -> Test:
        token = self._next()
        if token.kind != "ident":
            raise SieveSyntaxError(token.line, f"expected a test, found {_describe(token)}")
        self._count(token.line, depth)
        arguments, tests = self.arguments(depth)
        return Test(str(token.value), arguments, tests, token.line)


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the script"
    if token.kind == "string":
        return "a string"
    if token.kind == "tag":
        return f"':{token.value}'"
    return f"'{token.value}'"


def parse(script: bytes | str) -> tuple[Command, ...]:
    """The commands of ``script`` (RFC 5228 8.2), or ``SieveSyntaxError``.

    Bytes must be UTF-8 (RFC 5804 1.5 and RFC 5228 2.2); the size limit is
    checked before anything is read.
    """
    if isinstance(script, bytes):
        if len(script) > MAX_SCRIPT_BYTES:
            raise SieveSyntaxError(1, f"script larger than {MAX_SCRIPT_BYTES} bytes")
        try:
            text = script.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = script[:exc.start].count(b"\n") + 1
            raise SieveSyntaxError(line, "not valid UTF-8") from None
    else:
        text = script
        if len(text.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_BYTES:
            raise SieveSyntaxError(1, f"script larger than {MAX_SCRIPT_BYTES} bytes")
    if "\x00" in text:
        raise SieveSyntaxError(text[:text.index("\x00")].count("\n") + 1, "NUL character")
    parser = _Parser(_tokens(text))
    commands = parser.commands(0)
    token = parser._peek()
    if token.kind != "end":
        raise SieveSyntaxError(token.line, f"unexpected {_describe(token)}")
    return commands

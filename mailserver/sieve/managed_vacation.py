"""The webmail's vacation form as Sieve (RFC 5230): written into the account's
active script, read back from it.

How it sits beside the scripts people upload over ManageSieve (RFC 5804
allows one active script per account, and our delivery runs only that one):

* The form's reply is a block between two marker comments (``BEGIN``/``END``
  below), placed before the script's other commands (and their comments),
  right after its leading ``require`` commands (RFC 5228 3.2), so it runs
  first whatever the rest does (a ``stop`` or ``discard`` further down cannot
  swallow it).
* No active script: the block becomes the script ``Abwesenheitsnotiz``
  (``SCRIPT_NAME``), which is activated.  An active script of the person's own:
  the block goes into it and nothing else of it changes; switching the reply
  off removes exactly the block again.  Their own script is never replaced.
* Read back: the form shows what the active script says.  A ``vacation`` the
  person wrote themselves (outside the markers, e.g. with Thunderbird's Sieve
  add-on) is shown too, but saving the form then is refused with the script's
  name: two vacation actions would be a runtime error (RFC 5230 4.7), and we
  do not rewrite someone's own rules.
* Edits to the block over ManageSieve (a changed text, days, subject) show
  in the form, as long as the markers stay.

An end date is a ``currentdate`` test (RFC 5260 5) around the action: the
block stays after that day and simply stops answering.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

from mailserver.sieve.checks import Call, compile_script
from mailserver.sieve.grammar import SieveSyntaxError, StringList
from mailserver.sieve.scripts import ScriptError, SieveScripts

SCRIPT_NAME = "Abwesenheitsnotiz"
BEGIN = "# BEGIN Schulhof webmail vacation (the webmail's settings page writes this block)"
END = "# END Schulhof webmail vacation"
_BEGIN_PREFIX = "# BEGIN Schulhof webmail vacation"
_REQUIRE = 'require ["vacation", "date", "relational"];'
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


@dataclass(frozen=True)
class VacationRule:
    """What the form says: the reply text, its subject ("": ``Abwesend: <subject>``),
    one reply per sender per ``days``, and the last day it is sent (None: until off)."""

    body: str
    subject: str = ""
    days: int = 7
    until: dt.date | None = None


@dataclass(frozen=True)
class VacationState:
    """The reply in the active script (None: none), the script's name, and whether
    it is the webmail's block (False: the person's own ``vacation`` command)."""

    rule: VacationRule | None
    script: str = ""
    managed: bool = True


class OwnVacation(Exception):
    """The active script has a ``vacation`` of the person's own (``script``)."""

    def __init__(self, script: str) -> None:
        super().__init__(script)
        self.script = script


class ScriptNotExtended(Exception):
    """The person's own script and the block together do not make a valid script."""

    def __init__(self, script: str, reason: str) -> None:
        super().__init__(f"{script}: {reason}")
        self.script = script
        self.reason = reason


def quoted(text: str) -> str:
    """A Sieve quoted string (RFC 5228 2.4.2: only ``\\`` and ``"`` are escaped;
    line breaks are allowed inside and kept as CRLF, as the protocol wants)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def block(rule: VacationRule) -> str:
    """The marked block for ``rule`` (its own ``require``, then the action)."""
    action = f"vacation :days {rule.days}"
    if rule.subject:
        action += f" :subject {quoted(rule.subject)}"
    action += f" {quoted(rule.body)};"
    lines = [BEGIN, _REQUIRE]
    if rule.until is None:
        lines.append(action)
    else:
        lines += [f'if currentdate :value "le" "date" "{rule.until.isoformat()}" {{',
                  f"    {action}", "}"]
    lines.append(END)
    return "\r\n".join(lines) + "\r\n"


def _lines(text: str) -> list[str]:
    """Lines with their ends, split at LF only (as the parser counts lines)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _marked(lines: list[str]) -> tuple[int, int] | None:
    """(first, last) index of the block's lines, markers included."""
    for first, line in enumerate(lines):
        if line.rstrip("\r\n").startswith(_BEGIN_PREFIX):
            for last in range(first + 1, len(lines)):
                if lines[last].rstrip("\r\n").strip() == END:
                    return first, last
            return None
    return None


def without_block(script: str) -> str:
    """``script`` with the webmail's block taken out (unchanged if it has none)."""
    lines = _lines(script)
    found = _marked(lines)
    if found is None:
        return script
    return "".join(lines[:found[0]] + lines[found[1] + 1:])


def with_block(script: str, rule: VacationRule | None) -> str:
    """``script`` with the webmail's block for ``rule`` (None: without a block)
    before its first command that is not a ``require``; the rest unchanged."""
    rest = without_block(script)
    if rule is None:
        return rest
    lines = _lines(rest)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\r\n"
    at, after_requires = len(lines), 0
    for command in _commands(rest):
        if command.name == "require":
            after_requires = command.line
            continue
        # Before the command, and before the comments and blank lines just above
        # it (they speak about it), but after the last require's first line.
        at = command.line - 1
        while at > after_requires and (not lines[at - 1].strip()
                                       or lines[at - 1].lstrip().startswith("#")):
            at -= 1
        break
    return "".join(lines[:at]) + block(rule) + "".join(lines[at:])


def _commands(script: str) -> tuple[Call, ...]:
    if not script.strip():
        return ()
    return compile_script(script).commands


def _walk(calls: tuple[Call, ...], guard: Call | None = None
          ) -> Iterator[tuple[Call, Call | None]]:
    """Every command with the test of the ``if`` directly around it."""
    for call in calls:
        yield call, guard
        if call.block:
            yield from _walk(call.block, call.tests[0] if call.tests else None)


def _until(guard: Call | None) -> dt.date | None:
    """The end date of ``currentdate :value "le" "date" "YYYY-MM-DD"`` (ours)."""
    if guard is None or guard.name != "currentdate" or guard.matching[:2] != ("value", "le"):
        return None
    if guard.string(0) != "date" or len(guard.strings(1)) != 1:
        return None
    value = guard.strings(1)[0]
    if not _DATE.match(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def read(script: str) -> tuple[VacationRule | None, bool]:
    """The ``vacation`` of ``script`` as a form's rule, and whether it is in the
    webmail's block; (None, True) when the script has none (or does not parse).
    A ``vacation`` of the person's own comes first (it is what needs saying)."""
    try:
        commands = _commands(script)
    except SieveSyntaxError:
        return None, True
    span = _marked(_lines(script))
    found: list[tuple[bool, VacationRule]] = []
    for call, guard in _walk(commands):
        if call.name != "vacation":
            continue
        days = call.tags.get("days")
        reason = call.positional[0]
        rule = VacationRule(
            body=(reason.values[0] if isinstance(reason, StringList) else "").replace(
                "\r\n", "\n"),
            subject=call.tag_string("subject"), days=days if isinstance(days, int) else 7,
            until=_until(guard))
        found.append((span is not None and span[0] < call.line - 1 < span[1], rule))
    if not found:
        return None, True
    managed, rule = min(found, key=lambda item: item[0])
    return rule, managed


class VacationScripts:
    """Reads and writes the webmail's vacation reply in the account's Sieve scripts."""

    def __init__(self, scripts: SieveScripts) -> None:
        self._scripts = scripts

    async def _active(self, account_id: int) -> str:
        return next((name for name, active in await self._scripts.names(account_id)
                     if active), "")

    async def state(self, account_id: int) -> VacationState:
        name = await self._active(account_id)
        if not name:
            return VacationState(None)
        rule, managed = read(await self._scripts.get(account_id, name))
        return VacationState(rule, name, managed)

    async def save(self, account_id: int, rule: VacationRule | None) -> str:
        """Put ``rule`` (None: no reply) into the active script, or into
        ``SCRIPT_NAME`` made active when there is none; the script's name.
        Raises ``OwnVacation`` and ``ScriptNotExtended`` (nothing changed then)."""
        name = await self._active(account_id)
        if not name:
            if rule is None:
                return ""
            name = SCRIPT_NAME
            try:
                current = await self._scripts.get(account_id, name)
            except ScriptError:
                current = ""
            await self._scripts.put(account_id, name, _extended(name, current, rule))
            await self._scripts.activate(account_id, name)
            return name
        current = await self._scripts.get(account_id, name)
        own, managed = read(current)
        if own is not None and not managed:
            raise OwnVacation(name)
        new = _extended(name, current, rule)
        if name == SCRIPT_NAME and rule is None and not _commands(new):
            await self._scripts.activate(account_id, "")  # only the block was in it
            await self._scripts.delete(account_id, name)
            return ""
        await self._scripts.put(account_id, name, new)
        return name


def _extended(name: str, script: str, rule: VacationRule | None) -> str:
    """``with_block``, checked like an upload (``ScriptNotExtended`` if invalid)."""
    try:
        new = with_block(script, rule)
        compile_script(new)
    except SieveSyntaxError as error:
        raise ScriptNotExtended(name, error.reason) from None
    return new

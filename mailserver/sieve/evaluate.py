"""Running a checked Sieve program against one message for one recipient
(RFC 5228 2.10 and 4, with the extensions listed in ``mailserver.sieve.checks``).

Pure: the result is a value (``Actions``) that the delivery step carries out
(``mailserver.sieve.delivery``).  A runtime error (too many actions, an
incompatible combination, a limit) yields the implicit keep and nothing else
(RFC 5228 2.10.6): mail is never lost to a broken script.
"""

from __future__ import annotations

import datetime as dt
import email.header
import email.parser
import email.policy
import email.utils
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailserver.sieve.checks import MAX_REDIRECTS, Call, Program
from mailserver.sieve.matching import MatchResult, match

MAX_ACTIONS = 32
MAX_VARIABLES = 128
MAX_VARIABLE_LENGTH = 4096
MAX_BODY_BYTES = 1024 * 1024  # the body test reads at most this much
MAX_HEADER_BYTES = 256 * 1024
INBOX = "INBOX"


class SieveRuntimeError(Exception):
    """RFC 5228 2.10.6: the script failed while running; implicit keep applies."""


@dataclass(frozen=True)
class Vacation:
    """A ``vacation`` action (RFC 5230 4) as the script asked for it."""

    reason: str
    days: int = 7
    subject: str = ""
    sender: str = ""  # :from
    addresses: tuple[str, ...] = ()
    mime: bool = False
    handle: str = ""


@dataclass(frozen=True)
class Actions:
    """What the script decided for one recipient."""

    deliveries: tuple[tuple[str, frozenset[str]], ...] = ((INBOX, frozenset()),)
    redirects: tuple[str, ...] = ()
    reject: str | None = None
    vacation: Vacation | None = None
    error: str | None = None  # a runtime error: deliveries is the implicit keep


@dataclass(frozen=True)
class MessageFacts:
    """What the tests look at: the message and its envelope (RFC 5228 5.4)."""

    message: bytes
    envelope_from: str
    envelope_to: str
    now: dt.datetime

    def header_fields(self) -> dict[str, list[str]]:
        """Field name (lower case) -> raw values in order, unfolded (RFC 5322 2.2.3).

        A plain split rather than the ``email`` parser: it runs for every
        message of every account with a script, and this is ten times faster."""
        end = self.message.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES)
        head = self.message[:end if end >= 0 else MAX_HEADER_BYTES]
        fields: dict[str, list[str]] = {}
        name = ""
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line[:1] in (" ", "\t"):
                if name:
                    values = fields[name]
                    values[-1] += " " + line.strip()
                continue
            field, colon, value = line.partition(":")
            if not colon or not field or field != field.rstrip() or " " in field:
                name = ""
                continue
            name = field.lower()
            fields.setdefault(name, []).append(value.strip())
        return fields


class _Stop(Exception):
    pass


_EXPANDING = frozenset({"variables", "encoded-character"})
_VARIABLE_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*|[0-9]+)\}")
_ENCODED = re.compile(r"\$\{(hex|unicode):([0-9A-Fa-f \t\r\n]*)\}", re.IGNORECASE)


def _decode(value: str) -> str:
    """RFC 5228 2.7.2: header values are compared after RFC 2047 decoding."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value


class _Run:
    def __init__(self, program: Program, facts: MessageFacts) -> None:
        self.program = program
        self.facts = facts
        self.headers = facts.header_fields()
        self.variables: dict[str, str] = {}
        self.captures: tuple[str, ...] = ()
        self.flags: set[str] = set()
        self.implicit_keep = True
        self.keep_flags: frozenset[str] | None = None
        self.fileinto: list[tuple[str, frozenset[str]]] = []
        self.redirects: list[str] = []
        self.reject: str | None = None
        self.vacation: Vacation | None = None
        self.actions = 0
        self._body_text: list[str] | None = None
        # Decoded values and addresses per header name: a 20-rule script asks
        # for the same few fields again and again.
        self._values: dict[str, list[str]] = {}
        self._addresses: dict[str, list[str]] = {}

    def header_values(self, name: str) -> list[str]:
        key = name.lower()
        values = self._values.get(key)
        if values is None:
            values = [_decode(v) for v in self.headers.get(key, ())]
            self._values[key] = values
        return values

    def header_addresses(self, name: str) -> list[str]:
        key = name.lower()
        addresses = self._addresses.get(key)
        if addresses is None:
            addresses = [address for _name, address in email.utils.getaddresses(
                self.header_values(name)) if address]
            self._addresses[key] = addresses
        return addresses

    # -- strings -----------------------------------------------------------
    def expand(self, text: str) -> str:
        """RFC 5229 3 variable references and RFC 5228 2.4.2.4 encoded characters."""
        extensions = self.program.extensions
        if "encoded-character" in extensions and "${" in text:
            text = _ENCODED.sub(_encoded_character, text)
        if "variables" not in extensions or "${" not in text:
            return text

        def value(found: re.Match[str]) -> str:
            name = found.group(1)
            if name.isdigit():
                index = int(name)
                return self.captures[index] if index < len(self.captures) else ""
            return self.variables.get(name.lower(), "")

        return _VARIABLE_REF.sub(value, text)

    def strings(self, values: Sequence[str]) -> Sequence[str]:
        if not self.program.extensions & _EXPANDING:
            return values
        return [self.expand(v) for v in values]

    def _count_action(self) -> None:
        self.actions += 1
        if self.actions > MAX_ACTIONS:
            raise SieveRuntimeError(f"more than {MAX_ACTIONS} actions")

    # -- commands ----------------------------------------------------------
    def block(self, calls: Sequence[Call]) -> None:
        branch_taken = False
        for call in calls:
            name = call.name
            if name == "if":
                branch_taken = self.test(call.tests[0])
                if branch_taken:
                    self.block(call.block or ())
            elif name == "elsif":
                if not branch_taken:
                    branch_taken = self.test(call.tests[0])
                    if branch_taken:
                        self.block(call.block or ())
            elif name == "else":
                if not branch_taken:
                    self.block(call.block or ())
                branch_taken = True
            else:
                self.command(call)

    def command(self, call: Call) -> None:
        name = call.name
        if name == "require":
            return
        if name == "stop":
            raise _Stop
        if name == "keep":
            self._count_action()
            self.keep_flags = self._flags_of(call)
            self.implicit_keep = False
        elif name == "discard":
            self.implicit_keep = False
        elif name == "fileinto":
            self._count_action()
            mailbox = self.expand(call.string(0)).strip()
            if not mailbox or len(mailbox) > 200 or any(ord(c) < 32 for c in mailbox):
                raise SieveRuntimeError(f"line {call.line}: bad folder name")
            self.fileinto.append((mailbox, self._flags_of(call)))
            if "copy" not in call.tags:
                self.implicit_keep = False
        elif name == "redirect":
            self._count_action()
            address = self.expand(call.string(0)).strip()
            if len(self.redirects) >= MAX_REDIRECTS:
                raise SieveRuntimeError(f"more than {MAX_REDIRECTS} redirects")
            if address.lower() not in (r.lower() for r in self.redirects):
                self.redirects.append(address)
            if "copy" not in call.tags:
                self.implicit_keep = False
        elif name in ("reject", "ereject"):
            self._count_action()
            if self.reject is not None:
                raise SieveRuntimeError(f"line {call.line}: reject twice")
            self.reject = self.expand(call.string(0))[:1000]
            self.implicit_keep = False
        elif name == "vacation":
            self._count_action()
            if self.vacation is not None:
                raise SieveRuntimeError(f"line {call.line}: vacation twice")  # RFC 5230 4.7
            days = call.tags.get("days")
            self.vacation = Vacation(
                reason=self.expand(call.string(0)),
                days=days if isinstance(days, int) else 7,
                subject=self.expand(call.tag_string("subject")),
                sender=self.expand(call.tag_string("from")),
                addresses=tuple(self.strings(call.tag_strings("addresses"))),
                mime="mime" in call.tags, handle=self.expand(call.tag_string("handle")))
        elif name in ("setflag", "addflag", "removeflag"):
            self._flag_action(call)
        elif name == "set":
            self._set(call)

    def _flags_of(self, call: Call) -> frozenset[str]:
        if "flags" in call.tags:
            return frozenset(_flag_words(self.strings(call.tag_strings("flags"))))
        return frozenset(self.flags)

    def _flag_action(self, call: Call) -> None:
        """RFC 5232 3: the internal flags variable, or a named one."""
        values = _flag_words(self.strings(call.strings(len(call.positional) - 1)))
        if len(call.positional) == 2:
            name = self.expand(call.string(0)).lower()
            current = set(self.variables.get(name, "").split())
            current = _apply_flags(call.name, current, values)
            self._store(name, " ".join(sorted(current)))
        else:
            self.flags = _apply_flags(call.name, self.flags, values)

    def _set(self, call: Call) -> None:
        """RFC 5229 4: ``set`` with its modifiers, applied in precedence order."""
        value = self.expand(call.string(1))
        tags = call.tags
        if "lower" in tags:
            value = value.lower()
        if "upper" in tags:
            value = value.upper()
        if "lowerfirst" in tags:
            value = value[:1].lower() + value[1:]
        if "upperfirst" in tags:
            value = value[:1].upper() + value[1:]
        if "quotewildcard" in tags:
            value = re.sub(r"([*?\\])", r"\\\1", value)
        if "length" in tags:
            value = str(len(value))
        self._store(self.expand(call.string(0)).lower(), value)

    def _store(self, name: str, value: str) -> None:
        if name not in self.variables and len(self.variables) >= MAX_VARIABLES:
            raise SieveRuntimeError(f"more than {MAX_VARIABLES} variables")
        self.variables[name] = value[:MAX_VARIABLE_LENGTH]

    # -- tests -------------------------------------------------------------
    def test(self, call: Call) -> bool:
        name = call.name
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self.test(call.tests[0])
        if name == "allof":
            return all(self.test(t) for t in call.tests)
        if name == "anyof":
            return any(self.test(t) for t in call.tests)
        if name == "exists":
            return all(h.lower() in self.headers for h in self.strings(call.strings(0)))
        if name == "size":
            limit = call.positional[0]
            assert isinstance(limit, int)
            size = len(self.facts.message)
            return size > limit if "over" in call.tags else size < limit
        if name == "header":
            values = [v for h in self.strings(call.strings(0)) for v in self.header_values(h)]
            return self._match(call, values, call.strings(1))
        if name == "address":
            values = [self._part(call, address) for h in self.strings(call.strings(0))
                      for address in self.header_addresses(h)]
            return self._match(call, values, call.strings(1))
        if name == "envelope":
            values = []
            for part in self.strings(call.strings(0)):
                part = part.lower()
                if part == "from":
                    values.append(self._part(call, self.facts.envelope_from))
                elif part == "to":
                    values.append(self._part(call, self.facts.envelope_to))
            return self._match(call, values, call.strings(1))
        if name == "body":
            return self._match(call, self._body(call), call.strings(0))
        if name in ("date", "currentdate"):
            return self._date(call)
        if name == "string":
            return self._match(call, self.strings(call.strings(0)), call.strings(1))
        if name == "hasflag":
            if len(call.positional) == 2:
                names = self.strings(call.strings(0))
                flags = [f for n in names for f in self.variables.get(n.lower(), "").split()]
            else:
                flags = sorted(self.flags)
            return self._match(call, flags, call.strings(len(call.positional) - 1))
        raise SieveRuntimeError(f"line {call.line}: test '{name}' not implemented")

    def _match(self, call: Call, values: Sequence[str], keys: Sequence[str]) -> bool:
        match_type, relation, comparator = call.matching
        result: MatchResult = match(values, self.strings(keys), match_type=match_type,
                                    relation=relation, comparator=comparator)
        if result.matched and match_type == "matches":
            self.captures = tuple(c[:MAX_VARIABLE_LENGTH] for c in result.captures[:10])
        return result.matched

    def _part(self, call: Call, address: str) -> str:
        """RFC 5228 2.7.4 address parts."""
        if "localpart" in call.tags:
            return address.rpartition("@")[0] if "@" in address else address
        if "domain" in call.tags:
            return address.rpartition("@")[2] if "@" in address else ""
        return address

    def _body(self, call: Call) -> list[str]:
        """RFC 5173 5: ``:raw`` the undecoded body, ``:content`` the parts of those
        types, ``:text`` (the default) the decoded text parts."""
        message = self.facts.message
        if "raw" in call.tags:
            end = message.find(b"\r\n\r\n")
            body = message[end + 4:] if end >= 0 else b""
            return [body[:MAX_BODY_BYTES].decode("utf-8", "replace")]
        types = [t.lower() for t in self.strings(call.tag_strings("content"))] \
            if "content" in call.tags else ["text"]
        if self._body_text is not None and types == ["text"]:
            return self._body_text
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            message[:MAX_BODY_BYTES])
        texts: list[str] = []
        for part in parsed.walk():
            if part.is_multipart():
                continue
            kind = part.get_content_type().lower()
            if not any(kind == t or kind.startswith(t.rstrip("/") + "/") or t == ""
                       for t in types):
                continue
            try:
                payload = part.get_payload(decode=True)
                charset = part.get_content_charset() or "utf-8"
                texts.append(payload.decode(charset, "replace")
                             if isinstance(payload, bytes) else "")
            except (LookupError, ValueError):
                texts.append("")
        if types == ["text"]:
            self._body_text = texts
        return texts

    def _date(self, call: Call) -> bool:
        """RFC 5260 4 and 5: a date part of a header's date or of now."""
        zone = call.tag_string("zone")
        if call.name == "currentdate":
            when: dt.datetime | None = self.facts.now
            part, keys = call.string(0), call.strings(1)
        else:
            part, keys = call.string(1), call.strings(2)
            header = self.expand(call.string(0)).lower()
            values = self.headers.get(header)
            when = None
            if values:
                try:
                    when = email.utils.parsedate_to_datetime(values[0])
                except (TypeError, ValueError, IndexError):
                    when = None
        if when is None:
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        if zone:
            offset = _zone_offset(zone)
            if offset is None:
                return False
            when = when.astimezone(dt.timezone(offset))
        elif "originalzone" not in call.tags:
            when = when.astimezone(dt.UTC)
        return self._match(call, [_date_part(when, part.lower())], keys)


def _encoded_character(found: re.Match[str]) -> str:
    kind, body = found.group(1).lower(), found.group(2).split()
    try:
        if kind == "hex":
            return bytes(int(h, 16) for h in body).decode("utf-8")
        return "".join(chr(int(h, 16)) for h in body)
    except (ValueError, UnicodeDecodeError, OverflowError):
        return found.group(0)


def _flag_words(values: Sequence[str]) -> set[str]:
    return {word for value in values for word in value.split()}


def _apply_flags(action: str, current: set[str], values: set[str]) -> set[str]:
    folded = {v.lower(): v for v in values}
    if action == "setflag":
        return set(values)
    if action == "addflag":
        have = {c.lower() for c in current}
        return current | {v for k, v in folded.items() if k not in have}
    return {c for c in current if c.lower() not in folded}


def _zone_offset(zone: str) -> dt.timedelta | None:
    found = re.fullmatch(r"([+-])([0-9]{2})([0-9]{2})", zone.strip())
    if not found:
        return None
    sign = -1 if found.group(1) == "-" else 1
    return sign * dt.timedelta(hours=int(found.group(2)), minutes=int(found.group(3)))


def _date_part(when: dt.datetime, part: str) -> str:
    offset = when.utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    zone = f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    parts: dict[str, Callable[[], str]] = {
        "year": lambda: f"{when.year:04d}", "month": lambda: f"{when.month:02d}",
        "day": lambda: f"{when.day:02d}", "date": lambda: when.strftime("%Y-%m-%d"),
        "julian": lambda: str((when.date() - dt.date(1858, 11, 17)).days),
        "hour": lambda: f"{when.hour:02d}", "minute": lambda: f"{when.minute:02d}",
        "second": lambda: f"{when.second:02d}", "time": lambda: when.strftime("%H:%M:%S"),
        "iso8601": lambda: when.strftime("%Y-%m-%dT%H:%M:%S") + zone[:3] + ":" + zone[3:],
        "std11": lambda: email.utils.format_datetime(when),
        "zone": lambda: zone, "weekday": lambda: str(when.isoweekday() % 7),
    }
    return parts[part]()


def evaluate(program: Program, facts: MessageFacts) -> Actions:
    """The actions of ``program`` for this message (RFC 5228 2.10)."""
    run = _Run(program, facts)
    try:
        try:
            run.block(program.commands)
        except _Stop:
            pass
        if run.reject is not None and (run.fileinto or run.keep_flags is not None):
            raise SieveRuntimeError("reject together with keep or fileinto")  # RFC 5429 2.1
    except (SieveRuntimeError, RecursionError) as error:
        return Actions(error=str(error) or type(error).__name__)
    deliveries: list[tuple[str, frozenset[str]]] = []
    if run.keep_flags is not None:
        deliveries.append((INBOX, run.keep_flags))
    elif run.implicit_keep:
        deliveries.append((INBOX, frozenset(run.flags)))
    deliveries.extend(run.fileinto)
    seen: dict[str, frozenset[str]] = {}
    for mailbox, flags in deliveries:  # RFC 5228 2.10.3: one copy per folder
        key = INBOX if mailbox.upper() == INBOX else mailbox
        seen.setdefault(key, flags)
    return Actions(deliveries=tuple(seen.items()), redirects=tuple(run.redirects),
                   reject=run.reject, vacation=run.vacation)


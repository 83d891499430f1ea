"""Command parsing: a framed ``CommandUnit`` -> a typed ``Command``
(RFC 9051 9 formal syntax, RFC 3501 9, and the extensions named per command).

``parse_command`` raises only ``ParseError``, whatever the input: any other
exception escaping the grammar code is a bug, turned into a ParseError at the
edge so a client can never crash the session with bytes.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from collections.abc import Callable

from mailserver.imap.wire import commands as c
from mailserver.imap.wire.errors import ParseError
from mailserver.imap.wire.fetch_items import parse_fetch_attributes
from mailserver.imap.wire.framer import CommandUnit, FramingFailure, LiteralTooBig, frame_all
from mailserver.imap.wire.mutf7 import decode_mutf7
from mailserver.imap.wire.reader import Reader
from mailserver.imap.wire.search import MONTHS, SUPPORTED_CHARSETS, SearchKeyParser
from mailserver.imap.wire.sequence import SequenceSet, parse_sequence_set

_DATE_TIME = re.compile(
    r"([ 0-9]?[0-9])-([A-Za-z]{3})-([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
STATUS_ITEMS = frozenset({"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
                          "RECENT", "HIGHESTMODSEQ", "APPENDLIMIT"})
LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
SEARCH_RETURN = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})


def parse_command(unit: CommandUnit, *, utf8: bool = False) -> c.Command:
    """Parse one command. ``utf8`` after ``ENABLE UTF8=ACCEPT`` (RFC 6855 3)."""
    tag = unit.tag
    try:
        return _CommandParser(unit, utf8).command()
    except ParseError as error:
        raise error.with_tag(tag) from None
    except RecursionError:
        raise ParseError("command nested too deeply", tag) from None
    except Exception as error:
        raise ParseError("invalid command", tag) from error


def parse_idle_done(unit: CommandUnit) -> c.IdleDone:
    """The line ending IDLE must be ``DONE`` (RFC 9051 6.3.13, case-insensitive)."""
    if len(unit.segments) == 1 and unit.segments[0].upper() == b"DONE":
        return c.IdleDone()
    raise ParseError("expected DONE")


def parse_sasl_response(unit: CommandUnit) -> bytes | None:
    """A client's AUTHENTICATE continuation line (RFC 9051 6.2.2): base64
    data, or None for ``*`` (the client cancels)."""
    if len(unit.segments) != 1:
        raise ParseError("literal in authentication exchange")
    line = unit.segments[0]
    if line == b"*":
        return None
    return _base64(line)


def parse_line(data: bytes, *, utf8: bool = False) -> c.Command:
    """Frame and parse one complete command given as bytes with its CRLF and
    literal octets (tests and tools; the server uses ``CommandFramer``)."""
    events = frame_all(data, max_line_length=len(data) + 2, max_literal_size=len(data))
    if len(events) == 0 or isinstance(events[-1], FramingFailure | LiteralTooBig):
        raise ParseError("incomplete command")
    units = [event for event in events if isinstance(event, CommandUnit)]
    if len(units) != 1:
        raise ParseError("expected exactly one command")
    return parse_command(units[0], utf8=utf8)


def _base64(raw: bytes) -> bytes:
    if raw == b"=":
        return b""
    if not _BASE64.fullmatch(raw) or len(raw) % 4:
        raise ParseError("invalid base64")
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error as error:
        raise ParseError("invalid base64") from error


def parse_date_time(raw: bytes) -> datetime.datetime:
    """``date-time`` (RFC 9051 9): ``"dd-Mon-yyyy hh:mm:ss +zzzz"``."""
    found = _DATE_TIME.fullmatch(raw.decode("ascii", "replace"))
    if not found:
        raise ParseError("invalid date-time")
    day, month, year, hour, minute, second, sign, zone_h, zone_m = found.groups()
    months = [m.upper() for m in MONTHS]
    if month.upper() not in months:
        raise ParseError("invalid month")
    offset = datetime.timedelta(hours=int(zone_h), minutes=int(zone_m))
    try:
        return datetime.datetime(
            int(year), months.index(month.upper()) + 1, int(day.strip()),
            int(hour), int(minute), int(second),
            tzinfo=datetime.timezone(-offset if sign == "-" else offset))
    except ValueError as error:
        raise ParseError("invalid date-time") from error


class _CommandParser:
    def __init__(self, unit: CommandUnit, utf8: bool) -> None:
        self.r = Reader(unit)
        self.utf8 = utf8
        self.name = ""  # the command being parsed

    # --- shared pieces ----------------------------------------------------

    def mailbox(self) -> str:
        """``mailbox`` (RFC 9051 5.1): INBOX is case-insensitive."""
        name = self.decode_name(self.r.astring())
        return "INBOX" if name.upper() == "INBOX" else name

    def decode_name(self, raw: bytes) -> str:
        """A mailbox name off the wire. A name that is not valid modified
        UTF-7 (or UTF-8 after IMAP4rev2 / UTF8=ACCEPT) is well-formed IMAP
        syntax naming no mailbox: ``NO``, not ``BAD`` (RFC 3501 5.1.3, RFC
        9051 5.1; ``[CANNOT]`` for a name to be created, RFC 5530 3)."""
        try:
            if self.utf8:
                try:
                    return raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise ParseError("mailbox name is not UTF-8") from error
            return decode_mutf7(raw)
        except ParseError as error:
            code = "CANNOT" if self.name in ("CREATE", "RENAME") else "NONEXISTENT"
            raise ParseError(f"No such mailbox: {error.text}", status="NO",
                             code=code) from None

    def text(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ParseError("string is not UTF-8") from error

    def flag(self) -> str:
        """``flag`` (RFC 9051 9): ``\\`` atom (system/extension) or keyword."""
        prefix = "\\" if self.r.skip(b"\\") else ""
        return prefix + self.r.atom().decode("ascii")

    def flag_list(self) -> tuple[str, ...]:
        return tuple(self.r.parenthesized(self.flag))

    def sequence_set(self) -> SequenceSet:
        return parse_sequence_set(self.r.sequence_token())

    def number_list(self, item: Callable[[], str]) -> tuple[str, ...]:
        return tuple(self.r.parenthesized(item))

    # --- dispatch ---------------------------------------------------------

    def command(self) -> c.Command:
        r = self.r
        tag = r.tag()
        r.space()
        name = r.keyword()
        uid = False
        if name == "UID":
            r.space()
            name = r.keyword()
            if name not in ("COPY", "MOVE", "FETCH", "SEARCH", "STORE", "EXPUNGE"):
                raise ParseError(f"UID {name[:20]} is not a command")
            uid = True
        simple = _NO_ARGUMENTS.get(name)
        if simple is not None and not (uid and name == "EXPUNGE"):
            r.end()
            return simple(tag)
        handler = _HANDLERS.get(name)
        if handler is None:
            raise ParseError(f"unknown command {name[:20]}")
        self.name = name
        r.space()
        command = handler(self, tag, uid)
        r.end()
        return command

    # --- handlers ---------------------------------------------------------

    def authenticate(self, tag: str, uid: bool) -> c.Command:
        mechanism = self.r.atom().decode("ascii").upper()
        initial = None
        if not self.r.at_end():
            self.r.space()
            initial = _base64(self.r.atom() if not self.r.peek_is(b"=") else self._equals())
        return c.Authenticate(tag, mechanism, initial)

    def _equals(self) -> bytes:
        self.r.expect(b"=")
        return b"="

    def login(self, tag: str, uid: bool) -> c.Command:
        user = self.text(self.r.astring())
        self.r.space()
        return c.Login(tag, user, self.text(self.r.astring()))

    def enable(self, tag: str, uid: bool) -> c.Command:
        caps = [self.r.atom().decode("ascii").upper()]
        while not self.r.at_end():
            self.r.space()
            caps.append(self.r.atom().decode("ascii").upper())
        return c.Enable(tag, tuple(caps))

    def select(self, tag: str, uid: bool, read_only: bool = False) -> c.Command:
        r = self.r
        mailbox = self.mailbox()
        condstore = False
        qresync = None
        if not r.at_end():
            r.space()
            r.expect(b"(")
            while True:
                param = r.keyword()
                if param == "CONDSTORE":
                    condstore = True
                elif param == "QRESYNC" and qresync is None:
                    r.space()
                    qresync = self.qresync()
                else:
                    raise ParseError(f"unknown select parameter {param[:20]}")
                if r.skip(b")"):
                    break
                r.space()
        return c.Select(tag, mailbox, read_only, condstore, qresync)

    def examine(self, tag: str, uid: bool) -> c.Command:
        return self.select(tag, uid, read_only=True)

    def qresync(self) -> c.QresyncParams:
        r = self.r
        r.expect(b"(")
        uidvalidity = r.nz_number()
        r.space()
        modseq = r.number()
        known = None
        match = None
        if r.skip(b" "):
            if not r.peek_is(b"("):
                known = parse_sequence_set(r.sequence_token(), allow_saved=False)
                if r.skip(b" "):
                    match = self.seq_match()
            else:
                match = self.seq_match()
        r.expect(b")")
        return c.QresyncParams(uidvalidity, modseq, known, match)

    def seq_match(self) -> tuple[SequenceSet, SequenceSet]:
        r = self.r
        r.expect(b"(")
        sequences = parse_sequence_set(r.sequence_token(), allow_saved=False)
        r.space()
        uids = parse_sequence_set(r.sequence_token(), allow_saved=False)
        r.expect(b")")
        return sequences, uids

    def create(self, tag: str, uid: bool) -> c.Command:
        mailbox = self.mailbox()
        special: tuple[str, ...] = ()
        if not self.r.at_end():
            self.r.space()
            self.r.expect(b"(")
            if self.r.keyword() != "USE":
                raise ParseError("unknown CREATE parameter")
            self.r.space()
            special = self.flag_list()
            self.r.expect(b")")
        return c.Create(tag, mailbox, special)

    def delete(self, tag: str, uid: bool) -> c.Command:
        return c.Delete(tag, self.mailbox())

    def rename(self, tag: str, uid: bool) -> c.Command:
        old = self.mailbox()
        self.r.space()
        return c.Rename(tag, old, self.mailbox())

    def subscribe(self, tag: str, uid: bool) -> c.Command:
        return c.Subscribe(tag, self.mailbox())

    def unsubscribe(self, tag: str, uid: bool) -> c.Command:
        return c.Unsubscribe(tag, self.mailbox())

    def list(self, tag: str, uid: bool) -> c.Command:
        r = self.r
        selection: tuple[str, ...] = ()
        extended = False
        if r.peek_is(b"("):
            selection = self.number_list(r.keyword)
            for option in selection:
                if option not in LIST_SELECTION:
                    raise ParseError(f"unknown LIST selection option {option[:20]}")
            if "RECURSIVEMATCH" in selection and not set(selection) - {"RECURSIVEMATCH",
                                                                       "REMOTE"}:
                # RFC 5258 3: RECURSIVEMATCH "MUST NOT occur as the only
                # selection option (or only with REMOTE)".
                raise ParseError("RECURSIVEMATCH needs another selection option")
            r.space()
            extended = True
        reference = self.list_name(r.astring())
        r.space()
        found: tuple[str | None, ...]
        if r.peek_is(b"("):
            found = tuple(r.parenthesized(lambda: self.list_name(r.list_mailbox())))
            if not found:
                raise ParseError("empty pattern list")
            extended = True
        else:
            found = (self.list_name(r.list_mailbox()),)
        patterns = tuple(p for p in found if p is not None) if reference is not None else ()
        options = {"subscribed": False, "children": False, "special_use": False}
        status_items = None
        if not r.at_end():
            r.space()
            if r.keyword() != "RETURN":
                raise ParseError("expected RETURN")
            r.space()
            extended = True
            r.expect(b"(")
            while not r.skip(b")"):
                option = r.keyword()
                if option == "STATUS":
                    r.space()
                    status_items = self.status_items()
                elif option in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
                    options[option.lower().replace("-", "_")] = True
                else:
                    raise ParseError(f"unknown LIST return option {option[:20]}")
                if not r.peek_is(b")"):
                    r.space()
        return c.ListCommand(tag, reference or "", patterns, selection, options["subscribed"],
                             options["children"], options["special_use"], status_items,
                             extended)

    def lsub(self, tag: str, uid: bool) -> c.Command:
        reference = self.list_name(self.r.astring())
        self.r.space()
        pattern = self.list_name(self.r.list_mailbox())
        return c.Lsub(tag, reference or "", pattern if reference is not None else None)

    def list_name(self, raw: bytes) -> str | None:
        """A LIST / LSUB reference or pattern; ``None`` if it is not valid
        modified UTF-7 (UTF-8): no mailbox name can match it, so the command
        lists nothing and completes ``OK`` (RFC 3501 6.3.8, 6.3.9; RFC 9051
        6.3.9: LIST answers NO only when it cannot list), not NO."""
        try:
            return self.decode_name(raw)
        except ParseError as error:
            if error.status == "NO":
                return None
            raise

    def status_items(self) -> tuple[str, ...]:
        items = self.number_list(self.r.keyword)
        if not items:
            raise ParseError("empty status item list")
        for item in items:
            if item not in STATUS_ITEMS:
                raise ParseError(f"unknown status item {item[:20]}")
        return items

    def status(self, tag: str, uid: bool) -> c.Command:
        mailbox = self.mailbox()
        self.r.space()
        return c.Status(tag, mailbox, self.status_items())

    def append(self, tag: str, uid: bool) -> c.Command:
        r = self.r
        mailbox = self.mailbox()
        messages: list[c.AppendMessage] = []
        while not r.at_end() or not messages:
            r.space()
            flags: tuple[str, ...] = ()
            when = None
            if r.peek_is(b"("):
                flags = self.flag_list()
                r.space()
            if r.peek_is(b'"'):
                when = parse_date_time(r.quoted())
                r.space()
            data, binary = r.literal(allow_binary=True)
            messages.append(c.AppendMessage(data, flags, when, binary))
        return c.Append(tag, mailbox, tuple(messages))

    def getquota(self, tag: str, uid: bool) -> c.Command:
        return c.GetQuota(tag, self.decode_name(self.r.astring()))

    def getquotaroot(self, tag: str, uid: bool) -> c.Command:
        return c.GetQuotaRoot(tag, self.mailbox())

    def id(self, tag: str, uid: bool) -> c.Command:
        r = self.r
        if r.nstring_is_nil():
            return c.Id(tag, None)
        r.expect(b"(")
        params: list[tuple[str, str | None]] = []
        while not r.skip(b")"):
            if params:
                r.space()
            key = self.text(r.string())
            r.space()
            value = r.nstring()
            params.append((key, None if value is None else self.text(value)))
        return c.Id(tag, tuple(params))

    def compress(self, tag: str, uid: bool) -> c.Command:
        return c.Compress(tag, self.r.atom().decode("ascii").upper())

    def expunge(self, tag: str, uid: bool) -> c.Command:
        return c.Expunge(tag, parse_sequence_set(self.r.sequence_token()))

    def search(self, tag: str, uid: bool) -> c.Command:
        r = self.r
        return_options = None
        charset = None
        if r.peek_keyword() == "RETURN":
            r.keyword()
            r.space()
            return_options = self.number_list(r.keyword)
            for option in return_options:
                if option not in SEARCH_RETURN:
                    raise ParseError(f"unknown SEARCH return option {option[:20]}")
            r.space()
        if r.peek_keyword() == "CHARSET":
            r.keyword()
            r.space()
            charset = r.astring().decode("ascii", "replace").upper()
            if charset not in SUPPORTED_CHARSETS:
                raise ParseError("charset not supported", status="NO",
                                 code="BADCHARSET (" + " ".join(SUPPORTED_CHARSETS) + ")")
            r.space()
        codec = "ascii" if charset == "US-ASCII" else "utf-8"
        key = SearchKeyParser(r, codec).keys()
        return c.Search(tag, key, uid, charset, return_options)

    def fetch(self, tag: str, uid: bool) -> c.Command:
        r = self.r
        sequence_set = self.sequence_set()
        r.space()
        attributes = parse_fetch_attributes(r)
        changed_since = None
        vanished = False
        if not r.at_end():
            r.space()
            r.expect(b"(")
            while True:
                modifier = r.keyword()
                if modifier == "CHANGEDSINCE" and changed_since is None:
                    r.space()
                    changed_since = r.number()
                elif modifier == "VANISHED" and uid:
                    vanished = True
                else:
                    raise ParseError(f"unknown fetch modifier {modifier[:20]}")
                if r.skip(b")"):
                    break
                r.space()
            if vanished and changed_since is None:
                # RFC 7162 3.2.6: VANISHED requires CHANGEDSINCE.
                raise ParseError("VANISHED without CHANGEDSINCE")
        return c.Fetch(tag, sequence_set, attributes, uid, changed_since, vanished)

    def store(self, tag: str, uid: bool) -> c.Command:
        r = self.r
        sequence_set = self.sequence_set()
        r.space()
        unchanged_since = None
        if r.skip(b"("):
            if r.keyword() != "UNCHANGEDSINCE":
                raise ParseError("unknown STORE modifier")
            r.space()
            unchanged_since = r.number()
            r.expect(b")")
            r.space()
        mode = "add" if r.skip(b"+") else "remove" if r.skip(b"-") else "replace"
        name = r.keyword()
        if name not in ("FLAGS", "FLAGS.SILENT"):
            raise ParseError("expected FLAGS")
        r.space()
        if r.peek_is(b"("):
            flags = self.flag_list()
        else:
            flags_list = [self.flag()]
            while not r.at_end():
                r.space()
                flags_list.append(self.flag())
            flags = tuple(flags_list)
        return c.Store(tag, sequence_set, mode, flags, name == "FLAGS.SILENT", uid,
                       unchanged_since)

    def copy(self, tag: str, uid: bool) -> c.Command:
        sequence_set = self.sequence_set()
        self.r.space()
        return c.Copy(tag, sequence_set, self.mailbox(), uid)

    def move(self, tag: str, uid: bool) -> c.Command:
        sequence_set = self.sequence_set()
        self.r.space()
        return c.Move(tag, sequence_set, self.mailbox(), uid)


_NO_ARGUMENTS: dict[str, Callable[[str], c.Command]] = {
    "CAPABILITY": c.Capability, "NOOP": c.Noop, "LOGOUT": c.Logout, "STARTTLS": c.StartTls,
    "NAMESPACE": c.Namespace, "IDLE": c.Idle, "CHECK": c.Check, "CLOSE": c.Close,
    "UNSELECT": c.Unselect, "EXPUNGE": c.Expunge,
}
def command_name(line: bytes) -> str:
    """The command a client line names, for counting: ``FETCH``, ``UID FETCH``, ``DONE``
    (ending IDLE); ``other`` for anything else (a bounded set of names).  Never raises."""
    words = line.split(b" ", 3)
    if len(words) == 1:
        return "DONE" if words[0].strip().upper() == b"DONE" else "other"
    name = words[1].decode("ascii", "replace").upper()
    if name == "UID" and len(words) > 2:
        sub = words[2].decode("ascii", "replace").upper()
        return f"UID {sub}" if sub in _UID_COMMANDS else "other"
    return name if name in _NO_ARGUMENTS or name in _HANDLERS else "other"


_UID_COMMANDS = frozenset({"FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE"})
_HANDLERS: dict[str, Callable[[_CommandParser, str, bool], c.Command]] = {
    "AUTHENTICATE": _CommandParser.authenticate, "LOGIN": _CommandParser.login,
    "ENABLE": _CommandParser.enable, "SELECT": _CommandParser.select,
    "EXAMINE": _CommandParser.examine, "CREATE": _CommandParser.create,
    "DELETE": _CommandParser.delete, "RENAME": _CommandParser.rename,
    "SUBSCRIBE": _CommandParser.subscribe, "UNSUBSCRIBE": _CommandParser.unsubscribe,
    "LIST": _CommandParser.list, "LSUB": _CommandParser.lsub, "STATUS": _CommandParser.status,
    "APPEND": _CommandParser.append, "GETQUOTA": _CommandParser.getquota,
    "GETQUOTAROOT": _CommandParser.getquotaroot, "ID": _CommandParser.id,
    "COMPRESS": _CommandParser.compress, "EXPUNGE": _CommandParser.expunge,
    "SEARCH": _CommandParser.search, "FETCH": _CommandParser.fetch,
    "STORE": _CommandParser.store, "COPY": _CommandParser.copy, "MOVE": _CommandParser.move,
}

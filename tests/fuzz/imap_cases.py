"""IMAP fuzz cases: commands from the RFC 9051 grammar, mutated, over a real socket.

A command is a list of parts (atoms as bytes, literals as :class:`Literal`),
made for the session's state (not authenticated / authenticated / selected,
RFC 9051 3) with grammar-aware arguments: sequence sets (9051 9
``sequence-set``), FETCH items and sections (6.4.5), SEARCH keys (6.4.4),
mailbox names (5.1), astrings as atoms, quoted strings or literals
(synchronizing, LITERAL+ RFC 7888, literal8 RFC 3516).  Then, half the time,
a mutation: a token dropped, doubled, swapped or replaced by an edge value,
bytes inserted (NUL, 8-bit, bare CR/LF, unbalanced brackets), a literal's
announced size off by a few bytes, the line cut or made huge.
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
from dataclasses import dataclass

from tests.fuzz.harness import CaseFailed, Transcript, wait_answer


@dataclass(frozen=True)
class Literal:
    data: bytes
    kind: str = "sync"  # sync {n} | plus {n+} (RFC 7888) | binary ~{n} (RFC 3516)
    size_offset: int = 0  # a lying announced size (mutation)

    def marker(self) -> bytes:
        size = len(self.data) + self.size_offset
        if self.kind == "plus":
            return b"{%d+}" % size
        if self.kind == "binary":
            return b"~{%d}" % size
        return b"{%d}" % size


Part = bytes | Literal

NUMBERS = [b"0", b"1", b"2", b"3", b"*", b"4294967295", b"4294967296", b"-1",
           b"18446744073709551616", b"99999999999999999999999", b"00001", b"1e3", b"$"]
MAILBOXES = [b"INBOX", b"inbox", b"Sent", b"Drafts", b"Trash", b"Archiv", b"a/b/c", b"&ZeVnLIqe-",
             b"&-", b"&", b"..", b"a/../b", b"../INBOX", b"/", b"a//b", b"", b"%", b"*",
             "Entwürfe".encode(), b"INBOX/Unter", b"x" * 300, b"\x00", b"NIL"]
FLAGS = [b"\\Seen", b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Draft", b"\\Recent",
         b"$Forwarded", b"$Junk", b"foo", b"\\Bogus", b"\\", b"$", b"(", b"\\*"]
FETCH_ATOMS = [b"FLAGS", b"UID", b"ENVELOPE", b"BODYSTRUCTURE", b"BODY", b"INTERNALDATE",
               b"RFC822", b"RFC822.SIZE", b"RFC822.HEADER", b"RFC822.TEXT", b"MODSEQ",
               b"ALL", b"FAST", b"FULL", b"SAVEDATE", b"EMAILID", b"THREADID", b"PREVIEW"]
SECTIONS = [b"", b"HEADER", b"TEXT", b"MIME", b"1", b"1.2", b"2.MIME", b"1.HEADER", b"0",
            b"4294967296", b"1.1.1.1.1.1", b"HEADER.FIELDS (From To Subject)",
            b"HEADER.FIELDS.NOT (Received)", b"HEADER.FIELDS ()", b"3.TEXT", b"1."]
SEARCH_SIMPLE = [b"ALL", b"ANSWERED", b"DELETED", b"DRAFT", b"FLAGGED", b"NEW", b"OLD",
                 b"RECENT", b"SEEN", b"UNANSWERED", b"UNDELETED", b"UNDRAFT", b"UNFLAGGED",
                 b"UNSEEN", b"SAVEDBEFORESAVEDATE"]
SEARCH_STRING = [b"BCC", b"BODY", b"CC", b"FROM", b"SUBJECT", b"TEXT", b"TO", b"KEYWORD",
                 b"UNKEYWORD"]
SEARCH_DATE = [b"BEFORE", b"ON", b"SINCE", b"SENTBEFORE", b"SENTON", b"SENTSINCE"]
DATES = [b"1-Jan-2024", b"31-Dec-9999", b"29-Feb-2023", b"0-Jan-0000", b"1-Foo-2024",
         b"\"6-Dec-2026\"", b"2026-12-06", b"99999999-Jan-2024"]
STATUS_ITEMS = [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN", b"DELETED", b"SIZE",
                b"RECENT", b"HIGHESTMODSEQ", b"APPENDLIMIT", b"BOGUS"]
JUNK = [b"\x00", b"\xff\xfe", b"\r", b"\n", b"\r\n", b"(", b")", b"[", b"]", b"<", b">",
        b"\"", b"\\", b"{", b"}", b"{5}", b"~{3}", b"%", b"*", b"\x7f", "ü".encode(), b"\t",
        b" ", b"NIL", b"()", b"\"\"", b"x" * 2000]
MESSAGE = (b"From: anna@schule.test\r\nTo: fuzz@schule.test\r\nSubject: =?utf-8?q?Gr=C3=BC?=\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
           b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo\r\n"
           b"--b1\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n"
           b"--b1--\r\n")


def _pick(rng: random.Random, items: list[bytes]) -> bytes:
    return rng.choice(items)


def quoted(data: bytes) -> bytes:
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def astring(rng: random.Random, data: bytes) -> Part:
    """An astring (RFC 9051 9) written as an atom, a quoted string or a literal."""
    choice = rng.random()
    if choice < 0.4 and data and re.fullmatch(rb"[A-Za-z0-9./&_-]+", data):
        return data
    if choice < 0.75:
        return quoted(data)
    return Literal(data, rng.choice(["sync", "plus", "plus"]))


def sequence_set(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        a = _pick(rng, NUMBERS) if rng.random() < 0.3 else str(rng.randint(1, 6)).encode()
        if rng.random() < 0.5:
            b = _pick(rng, NUMBERS) if rng.random() < 0.3 else str(rng.randint(1, 9)).encode()
            parts.append(a + b":" + b)
        else:
            parts.append(a)
    return b",".join(parts)


def fetch_item(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return _pick(rng, FETCH_ATOMS)
    name = rng.choice([b"BODY", b"BODY.PEEK", b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE"])
    partial = b""
    if rng.random() < 0.3:
        start = rng.choice([b"0", b"1", b"10", b"4294967296", b"-1"])
        partial = b"<" + start + (b"." + rng.choice([b"0", b"5", b"99999999999"])
                                  if rng.random() < 0.8 else b"") + b">"
    return name + b"[" + _pick(rng, SECTIONS) + b"]" + partial


def fetch_items(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return fetch_item(rng)
    return b"(" + b" ".join(fetch_item(rng) for _ in range(rng.randint(0, 5))) + b")"


def search_key(rng: random.Random, depth: int = 0) -> list[Part]:
    choice = rng.random()
    if depth < 4 and choice < 0.1:
        return [b"NOT", *search_key(rng, depth + 1)]
    if depth < 4 and choice < 0.2:
        return [b"OR", *search_key(rng, depth + 1), *search_key(rng, depth + 1)]
    if depth < 4 and choice < 0.28:
        inner = [p for _ in range(rng.randint(1, 3)) for p in search_key(rng, depth + 1)]
        return [b"(", *inner, b")"]  # joined with spaces: "( ALL )" is itself a mutation
    if choice < 0.45:
        return [_pick(rng, SEARCH_SIMPLE)]
    if choice < 0.65:
        return [_pick(rng, SEARCH_STRING),
                astring(rng, rng.choice([b"hallo", "Grüße".encode(), b"", b"\xff", b"%"]))]
    if choice < 0.75:
        return [_pick(rng, SEARCH_DATE), _pick(rng, DATES)]
    if choice < 0.82:
        return [rng.choice([b"LARGER", b"SMALLER", b"MODSEQ", b"OLDER", b"YOUNGER"]),
                _pick(rng, NUMBERS)]
    if choice < 0.9:
        return [b"HEADER", astring(rng, b"Subject"), astring(rng, b"Gr")]
    if choice < 0.95:
        return [b"UID", sequence_set(rng)]
    return [sequence_set(rng)]


def search_args(rng: random.Random) -> list[Part]:
    parts: list[Part] = []
    if rng.random() < 0.2:
        parts += [b"RETURN", rng.choice([b"(MIN MAX COUNT)", b"(ALL)", b"()", b"(SAVE)"])]
    if rng.random() < 0.2:
        parts += [b"CHARSET", rng.choice([b"UTF-8", b"US-ASCII", b"ISO-8859-1", b"KOI8-R"])]
    for _ in range(rng.randint(1, 4)):
        parts += search_key(rng)
    return parts


def flag_list(rng: random.Random) -> bytes:
    return b"(" + b" ".join(rng.sample(FLAGS, rng.randint(0, 3))) + b")"


def mailbox(rng: random.Random) -> Part:
    return astring(rng, _pick(rng, MAILBOXES))


def any_state_command(rng: random.Random) -> list[Part]:
    return rng.choice([
        [b"CAPABILITY"], [b"NOOP"],
        [b"ID", rng.choice([b"NIL", b'("name" "fuzz" "version" "1")', b"(", b'("a")'])],
        [b"ENABLE", rng.choice([b"UTF8=ACCEPT", b"CONDSTORE", b"IMAP4rev2", b"QRESYNC", b"X"])],
    ])


def not_authenticated_command(rng: random.Random) -> list[Part]:
    return rng.choice([
        [b"LOGIN", astring(rng, rng.choice([b"anna", b"nobody", b"", "jürgen".encode()])),
         astring(rng, rng.choice([b"wrong", b"", b"x" * 600]))],
        [b"AUTHENTICATE", rng.choice([b"PLAIN", b"LOGIN", b"XOAUTH2", b"CRAM-MD5", b"plain"]),
         rng.choice([b"=", b"AGFubmEAd3Jvbmc=", b"!!!", b"*", b"AA=="])],
        [b"STARTTLS"],
        *[any_state_command(rng)] * 2,
    ])


def authenticated_command(rng: random.Random) -> list[Part]:
    return rng.choice([
        [b"SELECT", mailbox(rng)],
        [b"EXAMINE", mailbox(rng)],
        [b"SELECT", mailbox(rng), rng.choice([b"(CONDSTORE)", b"(QRESYNC (1 2))", b"()"])],
        [b"CREATE", mailbox(rng)], [b"DELETE", mailbox(rng)],
        [b"RENAME", mailbox(rng), mailbox(rng)],
        [b"SUBSCRIBE", mailbox(rng)], [b"UNSUBSCRIBE", mailbox(rng)],
        [b"LIST", astring(rng, rng.choice([b"", b"INBOX", b"a"])), mailbox(rng)],
        [b"LIST", b"(SUBSCRIBED RECURSIVEMATCH)", b'""', b"*", b"RETURN",
         rng.choice([b"(CHILDREN)", b"(STATUS (MESSAGES UNSEEN))", b"(SPECIAL-USE)"])],
        [b"LSUB", b'""', mailbox(rng)], [b"NAMESPACE"],
        [b"STATUS", mailbox(rng),
         b"(" + b" ".join(rng.sample(STATUS_ITEMS, rng.randint(0, 4))) + b")"],
        [b"APPEND", mailbox(rng), *([flag_list(rng)] if rng.random() < 0.5 else []),
         *([quoted(b"06-Dec-2026 12:00:00 +0100")] if rng.random() < 0.3 else []),
         Literal(rng.choice([MESSAGE, b"", b"x\r\n", MESSAGE[: rng.randint(0, len(MESSAGE))]]),
                 rng.choice(["sync", "plus", "binary"]))],
        [b"GETQUOTAROOT", mailbox(rng)], [b"GETQUOTA", astring(rng, b"")],
        [b"IDLE"],
        *[any_state_command(rng)],
    ])


def selected_command(rng: random.Random) -> list[Part]:
    uid = [b"UID"] if rng.random() < 0.4 else []
    return rng.choice([
        [*uid, b"FETCH", sequence_set(rng), fetch_items(rng)],
        [*uid, b"FETCH", sequence_set(rng), fetch_items(rng)],
        [*uid, b"FETCH", sequence_set(rng), fetch_items(rng), b"(CHANGEDSINCE 1)"],
        [*uid, b"SEARCH", *search_args(rng)],
        [*uid, b"SEARCH", *search_args(rng)],
        [*uid, b"STORE", sequence_set(rng),
         rng.choice([b"FLAGS", b"+FLAGS", b"-FLAGS.SILENT", b"+FLAGS.SILENT", b"X"]),
         flag_list(rng)],
        [*uid, b"COPY", sequence_set(rng), mailbox(rng)],
        [*uid, b"MOVE", sequence_set(rng), mailbox(rng)],
        [b"UID", b"EXPUNGE", sequence_set(rng)],
        [b"EXPUNGE"], [b"CHECK"], [b"CLOSE"], [b"UNSELECT"],
        [*uid, b"SORT", b"(DATE)", b"UTF-8", b"ALL"],
        *[authenticated_command(rng)],
    ])


def mutate(rng: random.Random, parts: list[Part]) -> list[Part]:
    parts = list(parts)
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        i = rng.randrange(len(parts))
        if choice < 0.15 and len(parts) > 1:
            del parts[i]
        elif choice < 0.25:
            parts.insert(i, parts[i])
        elif choice < 0.35:
            j = rng.randrange(len(parts))
            parts[i], parts[j] = parts[j], parts[i]
        elif choice < 0.55:
            parts[i] = rng.choice(NUMBERS + JUNK + MAILBOXES)
        elif choice < 0.75 and isinstance(parts[i], bytes):
            token = parts[i]
            at = rng.randint(0, len(token))
            parts[i] = token[:at] + _pick(rng, JUNK) + token[at:]
        elif choice < 0.82 and isinstance(parts[i], Literal):
            lit = parts[i]
            parts[i] = Literal(lit.data, lit.kind, rng.choice([-3, -1, 1, 2, 5]))
        elif choice < 0.88 and isinstance(parts[i], bytes):
            parts[i] = parts[i].lower() if rng.random() < 0.5 else parts[i].swapcase()
        elif choice < 0.94:
            parts[i] = Literal(rng.choice([b"", b"x", "ü".encode(), b"\x00\r\n"]),
                               rng.choice(["sync", "plus", "binary"]))
        else:
            parts.append(b"x" * rng.choice([1000, 70000]))
    return parts


def make_tag(rng: random.Random, number: int) -> bytes:
    if rng.random() < 0.05:
        return rng.choice([b"*", b"+", b"", b"a(b", b"t" * 300, b"\xff", b"a%", b"a{1}"])
    return b"F%d" % number


def framing_state(stream: bytes) -> tuple[int, bool]:
    """(literal bytes the server still expects, whether a line is left open) after
    ``stream``, following the framing of RFC 9051 4.3 (a literal ends its line)."""
    pos = 0
    while True:
        end = stream.find(b"\r\n", pos)
        if end < 0:
            return 0, pos < len(stream)
        match = re.search(rb"~?\{(\d{1,20})\+?\}$", stream[pos:end])
        if not match:
            pos = end + 2
            if pos == len(stream):
                return 0, False
            continue
        after = end + 2 + int(match.group(1))
        if after >= len(stream):
            return max(after - len(stream), 0), True
        pos = after


PAD_LIMIT = 1 << 20
_GREETING = re.compile(rb"\* (?:OK|PREAUTH|BYE)\b")


@dataclass
class ImapTarget:
    host: str
    port: int
    tls_port: int
    tls: ssl.SSLContext
    logins: list[tuple[str, str]]
    hang_seconds: float


class ImapConnection:
    """One client connection that stays in step with the server whatever was sent.

    After every fuzzed command a sentinel ``ZZn NOOP`` follows; its tagged OK
    means the server has dealt with everything before it.  If it does not come,
    the input may have left the server rightly waiting (an announced literal,
    an IDLE, an unfinished line): that is completed and the sentinel sent again.
    Only silence after that, on an open connection, is a hang.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 transcript: Transcript, hang_seconds: float, tls: ssl.SSLContext) -> None:
        self.reader, self.writer = reader, writer
        self.tls = tls
        self.t = transcript
        self.hang = hang_seconds
        self.pending = b""  # sent since the server was last known in step
        self.buffer = b""
        self.received = b""
        self.closed = False
        self.sentinels = 0

    async def send(self, data: bytes) -> None:
        self.t.sent(data)
        self.pending += data
        self.writer.write(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.closed = True

    async def read_until(self, done: re.Pattern[bytes], seconds: float) -> bytes | None:
        """Lines up to and including the first that matches ``done``; None on timeout,
        b"" (and ``closed``) on EOF."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            for match in re.finditer(rb"[^\n]*\n", self.buffer):
                if done.match(match.group()):
                    got, self.buffer = self.buffer[:match.end()], self.buffer[match.end():]
                    return got
            if self.closed:
                return b""
            chunk = await wait_answer(self.reader, max(deadline - loop.time(), 0.0))
            if chunk is None:
                return None
            if chunk == b"":
                self.closed = True
                return b""
            self.t.got(chunk)
            self.buffer += chunk
            self.received += chunk
            if b"SERVERBUG" in chunk:
                raise CaseFailed("5xx", "IMAP NO [SERVERBUG]")

    async def sync(self) -> None:
        self.sentinels += 1
        tag = b"ZZ%d" % self.sentinels
        done = re.compile(re.escape(tag) + rb" |\* BYE")
        missing, line_open = framing_state(self.pending)
        # Input that leaves the server rightly waiting (a literal, an open line,
        # IDLE) is completed soon, not after a full hang wait.
        waits = missing or line_open or b"idle" in self.pending.lower()
        await self.send(tag + b" NOOP\r\n")
        got = await self.read_until(done, 0.3 if waits else self.hang)
        if got is not None:
            self.pending = b""
            return
        missing, _open = framing_state(self.pending)
        if missing > PAD_LIMIT:
            self.t.note(f"server waits for a {missing}-byte literal; not a hang")
            self.closed = True
            return
        await self.send(b"x" * missing + b"\r\nDONE\r\n" + tag + b" NOOP\r\n")
        got = await self.read_until(done, self.hang)
        if got is None and not self.closed:
            raise CaseFailed("hang", f"no answer within {self.hang} s to the input, nor to "
                             "what completes it (literal bytes, DONE, NOOP)")
        self.pending = b""

    async def command(self, tag: bytes, parts: list[Part]) -> bytes:
        """Send one command (waiting for '+' before a synchronizing literal's data)
        and the sentinel; everything the server answered."""
        line = tag
        mark = len(self.received)
        for part in parts:
            line += b" "
            if not isinstance(part, Literal):
                line += part
                continue
            line += part.marker() + b"\r\n"
            if part.kind != "plus":
                await self.send(line)
                line = b""
                reply = await self.read_until(
                    re.compile(rb"\+|" + re.escape(tag) + rb" |\* (?:BAD|BYE)"), self.hang)
                if not last_line(reply).startswith(b"+"):
                    break  # refused, closed or silent: the sentinel sorts it out
                if len(part.data) + part.size_offset > PAD_LIMIT:
                    self.closed = True
                    return self.received[mark:]
            line += part.data
        else:
            line += b"\r\n"
        if line:
            await self.send(line)
        # Only a complete STARTTLS line is answered at once; one whose literal's
        # announced size lies leaves the server rightly waiting (the sentinel
        # completes it).
        if (parts and parts[0] in (b"STARTTLS", b"starttls") and line.endswith(b"\r\n")
                and framing_state(self.pending) == (0, False)):
            await self.starttls(tag)
        if not self.closed:
            await self.sync()
        return self.received[mark:]

    async def starttls(self, tag: bytes) -> None:
        """RFC 9051 6.2.1: after the tagged OK the next bytes are the TLS handshake."""
        reply = await self.read_until(re.compile(re.escape(tag) + rb" |\* (?:BAD|BYE)"),
                                      self.hang)
        if reply is None:
            raise CaseFailed("hang", "no answer to STARTTLS")
        if not last_line(reply).startswith(tag + b" OK"):
            return
        try:
            await asyncio.wait_for(self.writer.start_tls(self.tls), self.hang)
        except (OSError, ssl.SSLError, TimeoutError) as error:
            self.t.note(f"TLS handshake failed: {error!r}")
            self.closed = True
            return
        self.t.note("TLS started")
        self.pending = b""


def last_line(reply: bytes | None) -> bytes:
    lines = (reply or b"").rstrip(b"\r\n").rsplit(b"\n", 1)
    return lines[-1]


def source_address(rng: random.Random) -> str:
    """A loopback source address of its own, so failed logins throttle no real session."""
    return f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


async def run_case(target: ImapTarget, rng: random.Random, t: Transcript) -> None:
    mode = rng.choice(["plain", "tls", "auth", "selected", "selected", "selected"])
    use_tls = mode != "plain"
    source = "127.0.0.1" if mode in ("auth", "selected") else source_address(rng)
    t.note(f"mode={mode} source={source}")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            target.host, target.tls_port if use_tls else target.port,
            ssl=target.tls if use_tls else None, local_addr=(source, 0)), target.hang_seconds)
    except (OSError, TimeoutError) as error:
        t.note(f"connect failed: {error!r}")
        return
    conn = ImapConnection(reader, writer, t, target.hang_seconds, target.tls)
    try:
        greeting = await conn.read_until(_GREETING, target.hang_seconds)
        if greeting is None:
            raise CaseFailed("hang", "no greeting")
        if not greeting:
            return
        state = "not-auth"
        if mode in ("auth", "selected"):
            login, password = rng.choice(target.logins)
            reply = await conn.command(b"L1", [b"LOGIN", quoted(login.encode()),
                                               quoted(password.encode())])
            if b"L1 OK" not in reply:
                return  # e.g. the login limit: nothing to fuzz behind it
            state = "auth"
            if mode == "selected":
                reply = await conn.command(b"S1", [b"SELECT", b"INBOX"])
                state = "selected" if b"S1 OK" in reply else "auth"
        for number in range(rng.randint(1, 6)):
            maker = {"not-auth": not_authenticated_command, "auth": authenticated_command,
                     "selected": selected_command}[state]
            parts = maker(rng)
            if rng.random() < 0.5:
                parts = mutate(rng, parts)
            await conn.command(make_tag(rng, number), parts)
            if conn.closed:
                return
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 5)
        except (OSError, TimeoutError, ssl.SSLError):
            pass

"""SMTP fuzz cases: sessions from the RFC 5321 grammar, mutated, on MX and submission.

A case is one connection to the MX (2525-style, STARTTLS offered), the
submission port (STARTTLS, then AUTH) or submissions (implicit TLS), and a
few steps: EHLO/HELO with odd domains, mail transactions with odd paths and
parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT, AUTH=; RFC 5321
4.1.2, RFC 1870, 6152, 6531, 3461, 4954), pipelined groups (RFC 2920), DATA
with fuzzed headers and bodies, BDAT chunks (RFC 3030), STARTTLS with a real
handshake, AUTH with junk, VRFY/EXPN/HELP/NOOP/RSET and unknown verbs; half
the steps mutated (bytes inserted: NUL, 8-bit, bare CR/LF; case flipped; the
line cut or made longer than 1000 or 64 KiB octets).
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import ssl
from dataclasses import dataclass

from tests.fuzz.harness import CaseFailed, Transcript, wait_answer
from tests.fuzz.imap_cases import source_address

DOMAINS = [b"schule.test", b"SCHULE.TEST", b"outside.example", b"[127.0.0.1]",
           b"[IPv6:::1]", b"[300.1.1.1]", b"", b"localhost", b"a" * 300 + b".example",
           "schüle.test".encode(), b"xn--schle-kva.test", b"-bad-.example", b"."]
LOCALS = [b"fuzz1", b"fuzz2", b"anna", b"lehrer", b"postmaster", b"nobody", b"FUZZ1",
          b'"quoted local"', b'"a\\"b"', b"a+tag", b"x" * 70, b"x" * 300, "jürgen".encode(),
          b"", b"a..b", b".a", b"%", b"fuzz1%schule.test"]
MAIL_PARAMS = [b"SIZE=100", b"SIZE=0", b"SIZE=99999999999999999999", b"SIZE=-1", b"SIZE=",
               b"BODY=8BITMIME", b"BODY=BINARYMIME", b"BODY=7BIT", b"BODY=junk", b"SMTPUTF8",
               b"RET=FULL", b"RET=HDRS", b"RET=x", b"ENVID=abc+2B", b"ENVID=" + b"x" * 200,
               b"AUTH=<>", b"AUTH=fuzz1@schule.test", b"UNKNOWN=1", b"=", b"SIZE=1 SIZE=2"]
RCPT_PARAMS = [b"NOTIFY=NEVER", b"NOTIFY=SUCCESS,FAILURE,DELAY", b"NOTIFY=NEVER,SUCCESS",
               b"ORCPT=rfc822;fuzz1@schule.test", b"ORCPT=junk", b"NOTIFY=", b"X=Y"]
VERBS = [b"NOOP", b"RSET", b"HELP", b"VRFY fuzz1", b"EXPN staff", b"VRFY", b"TURN", b"ETRN x",
         b"XCLIENT ADDR=1.2.3.4", b"GET / HTTP/1.1", b"QUIT ", b"DATA x", b"BDAT", b"BDAT x",
         b"MAIL", b"RCPT", b"EHLO", b"AUTH", b"STARTTLS x"]
JUNK = [b"\x00", b"\xff", b"\r", b"\n", b"\r\n", b"<", b">", b":", b"@", b" ", b"\t", b"\"",
        b"\\", b"%", b",", "ü".encode(), b"\r\n.\r\n", b"x" * 1200, b"=", b"[", b"]"]
HEADERS = [b"From: fuzz1@schule.test", b"From: Lehrer <lehrer@schule.test>",
           b'From: "lehrer@schule.test" <anna@schule.test>', b"From:", b"From: <>",
           b"From: a@b, c@d", b"Sender: lehrer@schule.test", b"Resent-From: lehrer@schule.test",
           b"To: fuzz2@schule.test", b"Subject: =?utf-8?b?R3LDvMOfZQ==?=",
           b"Subject: =?x-unknown?q?=FF?=", b"Subject: " + b"x" * 2000,
           b"Date: Sun, 6 Dec 2026 20:00:00 +0100", b"Date: gestern",
           b"Message-ID: <a@b>", b"Message-ID: <<>>", b"MIME-Version: 1.0",
           b"Content-Type: multipart/mixed; boundary=\"b\"",
           b"Content-Type: multipart/mixed", b"Content-Type: text/plain; charset=x-junk",
           b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: x-uuencode",
           b"DKIM-Signature: v=1; a=rsa-sha256; d=schule.test; s=x; b=AAAA; bh=AAAA; h=from",
           b"DKIM-Signature: junk", b"ARC-Seal: i=1; cv=none", b"Received: from x",
           b"Authentication-Results: schule.test; dkim=pass", b" folded continuation",
           b"X-\xff: \xfe", b"Bad Header Name: x", b"\x00: x"]
BODIES = [b"Hallo\r\n", b"", b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
          b"=?=\r\n", b"AAAA====\r\n", b"..\r\n.x\r\n", "Grüße\r\n".encode(),
          b"x" * 5000 + b"\r\n", b"\x00\x01\x02\r\n", b"line\rbare cr\nbare lf\r\n"]


def _pick(rng: random.Random, items: list[bytes]) -> bytes:
    return rng.choice(items)


def address(rng: random.Random, local: bool = True) -> bytes:
    if rng.random() < 0.1:
        return rng.choice([b"", b"<>", b"@a,@b:x@y", b"x@", b"@x", b"x", b"x@y@z"])
    domain = b"schule.test" if local and rng.random() < 0.7 else _pick(rng, DOMAINS)
    return _pick(rng, LOCALS) + b"@" + domain


def path(rng: random.Random, local: bool = True) -> bytes:
    inner = address(rng, local)
    if rng.random() < 0.1:
        return inner  # no angle brackets
    return b"<" + inner + b">"


def mail_from(rng: random.Random, sender: bytes | None) -> bytes:
    if rng.random() < 0.5:  # a plain valid one, so that transactions get to DATA
        return b"MAIL FROM:<" + (sender or b"someone@outside.example") + b">"
    who = b"<" + sender + b">" if sender and rng.random() < 0.8 else path(rng, False)
    params = rng.sample(MAIL_PARAMS, rng.choice([0, 0, 1, 2]))
    return b" ".join([b"MAIL FROM:" + who, *params])


def rcpt_to(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return b"RCPT TO:<" + rng.choice([b"fuzz1", b"fuzz2", b"anna", b"lehrer"]) + \
            b"@schule.test>"
    params = rng.sample(RCPT_PARAMS, rng.choice([0, 0, 1, 2]))
    return b" ".join([b"RCPT TO:" + path(rng), *params])


def message(rng: random.Random) -> bytes:
    headers = rng.sample(HEADERS, rng.randint(0, 6))
    body = b"".join(rng.sample(BODIES, rng.randint(0, 3)))
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


def dot_stuffed(data: bytes) -> bytes:
    """RFC 5321 4.5.2; and a final CRLF so the end marker is a line of its own."""
    lines = data.split(b"\r\n")
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


def mutate_line(rng: random.Random, line: bytes) -> bytes:
    for _ in range(rng.randint(1, 2)):
        choice = rng.random()
        at = rng.randint(0, len(line))
        if choice < 0.5:
            line = line[:at] + _pick(rng, JUNK) + line[at:]
        elif choice < 0.65:
            line = line.swapcase()
        elif choice < 0.75:
            line = line[:at]
        elif choice < 0.85:
            line = line + b" " + b"x" * rng.choice([1000, 70000])
        elif choice < 0.95:
            line = line.replace(b":", b" : ", 1)
        else:
            line = line.replace(b" ", b"", 1)
    return line


@dataclass
class SmtpTarget:
    host: str
    mx: int
    submission: int
    submissions: int
    tls: ssl.SSLContext
    logins: list[tuple[str, str]]
    hang_seconds: float


_REPLY_END = re.compile(rb"(?:^|\n)\d{3}(?: [^\n]*)?\r?\n$|(?:^|\n)\d{3}\r?\n$")
PAD_LIMIT = 1 << 20
# aiosmtpd's reply to an exception in a command ("500 Error: (KeyError) ..."),
# also after our enhanced status codes were put in.
_EXCEPTION_REPLY = re.compile(rb"\d{3}[ -](?:\d\.\d+\.\d+ )?(?:Error: )?\(\w+\) ")


class SmtpConnection:
    """A client that knows how many replies each step should bring (RFC 5321 4.2)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 transcript: Transcript, hang_seconds: float, tls: ssl.SSLContext) -> None:
        self.reader, self.writer = reader, writer
        self.t = transcript
        self.hang = hang_seconds
        self.tls = tls
        self.buffer = b""
        self.closed = False
        self.bdat_missing = 0
        self.bdat_open = False  # a chunk larger than we would ever send was announced

    async def send(self, data: bytes) -> None:
        self.t.sent(data)
        self.writer.write(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.closed = True

    def _take_reply(self) -> bytes | None:
        """One complete (possibly multi-line) reply from the buffer, if there is one."""
        pos = 0
        while True:
            end = self.buffer.find(b"\n", pos)
            if end < 0:
                return None
            line = self.buffer[pos:end + 1]
            pos = end + 1
            if not (len(line) > 3 and line[3:4] == b"-"):
                reply, self.buffer = self.buffer[:pos], self.buffer[pos:]
                return reply

    async def replies(self, count: int, seconds: float) -> list[bytes] | None:
        """``count`` replies; fewer if the connection closed; None on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        got: list[bytes] = []
        while len(got) < count:
            reply = self._take_reply()
            if reply is not None:
                got.append(reply)
                if _EXCEPTION_REPLY.match(reply):
                    raise CaseFailed("5xx", f"SMTP {reply[:200]!r}")
                continue
            if self.closed:
                return got
            chunk = await wait_answer(self.reader, max(deadline - loop.time(), 0.0))
            if chunk is None:
                return None
            if chunk == b"":
                self.closed = True
                continue
            self.t.got(chunk)
            self.buffer += chunk
        return got

    async def step(self, data: bytes, count: int = 1) -> list[bytes]:
        """Send ``data``, expecting ``count`` replies; silence is completed, then a hang."""
        while self._take_reply() is not None:
            pass  # late replies to earlier input (a mutation split a line): not this step's
        await self.send(data)
        if self.closed:
            return []
        complete = data.endswith(b"\n") and not self.bdat_missing
        got = await self.replies(count, self.hang if complete else 0.3)
        if got is not None:
            return got
        if self.bdat_missing > PAD_LIMIT:
            self.t.note(f"server reads a {self.bdat_missing}-byte BDAT chunk; not a hang")
            self.closed = True
            return []
        # Whatever the input left open: a BDAT chunk, a line, a DATA section.
        await self.send(b"x" * self.bdat_missing + b"\r\n.\r\nNOOP\r\n")
        self.bdat_missing = 0
        got = await self.replies(1, self.hang)
        if got is None and self.bdat_open:
            self.t.note("server reads an announced huge BDAT chunk; not a hang")
            self.closed = True
            return []
        if got is None:
            raise CaseFailed("hang", f"no reply within {self.hang} s to the input, nor to "
                             "what completes it (BDAT bytes, CRLF . CRLF, NOOP)")
        return got

    async def starttls(self) -> bool:
        try:
            await asyncio.wait_for(self.writer.start_tls(self.tls), self.hang)
        except (OSError, ssl.SSLError, TimeoutError) as error:
            self.t.note(f"TLS handshake failed: {error!r}")
            self.closed = True
            return False
        self.t.note("TLS started")
        return True


def _code(replies: list[bytes]) -> bytes:
    return replies[-1][:3] if replies else b""


async def transaction(conn: SmtpConnection, rng: random.Random, sender: bytes | None) -> None:
    """MAIL, RCPT..., then DATA or BDAT: pipelined or one by one, maybe mutated."""
    commands = [mail_from(rng, sender)] + [rcpt_to(rng) for _ in range(rng.randint(1, 3))]
    commands = [mutate_line(rng, c) if rng.random() < 0.15 else c for c in commands]
    use_bdat = rng.random() < 0.35
    if rng.random() < 0.5:  # RFC 2920: the group in one write, replies in order
        await conn.step(b"".join(c + b"\r\n" for c in commands), len(commands))
    else:
        for command in commands:
            await conn.step(command + b"\r\n")
            if conn.closed:
                return
    if conn.closed:
        return
    body = message(rng)
    if use_bdat:
        chunks = [body[i:i + 700] for i in range(0, len(body), 700)] or [b""]
        for number, chunk in enumerate(chunks):
            last = b" LAST" if number == len(chunks) - 1 else b""
            size = len(chunk)
            if rng.random() < 0.1:
                size = rng.choice([size + 3, max(size - 3, 0), 0, 10**12])
            command = b"BDAT %d%s\r\n" % (size, last)
            if rng.random() < 0.1:
                command = mutate_line(rng, command[:-2]) + b"\r\n"
            conn.bdat_missing = max(size - len(chunk), 0)
            conn.bdat_open = conn.bdat_open or conn.bdat_missing > PAD_LIMIT
            await conn.step(command + chunk)
            conn.bdat_missing = 0
            if conn.closed:
                return
        return
    replies = await conn.step(b"DATA\r\n")
    if _code(replies) == b"354":
        data = dot_stuffed(body)
        if rng.random() < 0.2:
            data = mutate_line(rng, data)
            if not data.endswith(b"\r\n"):  # else the end marker is no line of its own
                data += b"\r\n"
        await conn.step(data + b".\r\n")


async def run_case(target: SmtpTarget, rng: random.Random, t: Transcript) -> None:
    mode = rng.choice(["mx", "mx", "mx", "mx-tls", "submission", "submission-auth",
                       "submission-auth", "submissions-auth"])
    authenticated = mode.endswith("-auth")
    source = "127.0.0.1" if authenticated else source_address(rng)
    port = {"mx": target.mx, "mx-tls": target.mx, "submission": target.submission,
            "submission-auth": target.submission,
            "submissions-auth": target.submissions}[mode]
    implicit = mode == "submissions-auth"
    t.note(f"mode={mode} source={source}")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            target.host, port, ssl=target.tls if implicit else None,
            local_addr=(source, 0)), target.hang_seconds)
    except (OSError, TimeoutError) as error:
        t.note(f"connect failed: {error!r}")
        return
    conn = SmtpConnection(reader, writer, t, target.hang_seconds, target.tls)
    try:
        greeting = await conn.replies(1, target.hang_seconds)
        if greeting is None:
            raise CaseFailed("hang", "no greeting")
        if not greeting or not greeting[0].startswith(b"220"):
            return
        ehlo = b"EHLO " + _pick(rng, DOMAINS) if rng.random() < 0.3 else b"EHLO client.test"
        await conn.step(ehlo + b"\r\n")
        sender = None
        if mode in ("mx-tls", "submission-auth"):
            if _code(await conn.step(b"STARTTLS\r\n")) != b"220" or not await conn.starttls():
                return
            await conn.step(b"EHLO client.test\r\n")
        if authenticated:
            login, password = rng.choice(target.logins)
            token = base64.b64encode(f"\0{login}\0{password}".encode())
            if _code(await conn.step(b"AUTH PLAIN " + token + b"\r\n")) != b"235":
                return
            sender = f"{login}@schule.test".encode()
        for _ in range(rng.randint(1, 5)):
            if conn.closed:
                return
            await one_step(conn, rng, sender, authenticated)
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 5)
        except (OSError, TimeoutError, ssl.SSLError):
            pass


async def one_step(conn: SmtpConnection, rng: random.Random, sender: bytes | None,
                   authenticated: bool) -> None:
    choice = rng.random()
    if choice < 0.45:
        await transaction(conn, rng, sender)
    elif choice < 0.55:
        command = rng.choice([b"EHLO ", b"HELO ", b"ehlo ", b"LHLO "]) + _pick(rng, DOMAINS)
        await conn.step(command + b"\r\n")
    elif choice < 0.62 and not authenticated:
        mechanism = rng.choice([b"PLAIN", b"LOGIN", b"CRAM-MD5", b"XOAUTH2", b"plain"])
        argument = rng.choice([b"", b" =", b" !!!", b" AGFubmEAd3Jvbmc=", b" " + b"A" * 3000])
        replies = await conn.step(b"AUTH " + mechanism + argument + b"\r\n")
        if _code(replies) == b"334":
            await conn.step(rng.choice([b"*", b"AAAA", b"=", b"\xff", b""]) + b"\r\n")
    elif choice < 0.67:
        if _code(await conn.step(b"STARTTLS\r\n")) == b"220":
            if rng.random() < 0.7:
                if await conn.starttls():
                    await conn.step(b"EHLO client.test\r\n")
            else:  # a handshake that fails (RFC 3207 5: the server may close)
                await conn.send(rng.choice([b"\x16\x03\x01\x00\x05hello", b"EHLO x\r\n",
                                            bytes(range(256))]))
                conn.closed = True
    else:
        line = _pick(rng, VERBS)
        if rng.random() < 0.5:
            line = mutate_line(rng, line)
        await conn.step(line + b"\r\n", 1 + line.count(b"\n"))

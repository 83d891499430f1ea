"""One ManageSieve connection (RFC 5804 2): STARTTLS, AUTHENTICATE PLAIN after
TLS, then the script commands on the account's scripts.

States: not authenticated (CAPABILITY, STARTTLS, AUTHENTICATE, NOOP, LOGOUT)
-> authenticated (the script commands, UNAUTHENTICATE).  A script is checked
(``mailserver.sieve.checks.compile_script``) before it is stored: a refusal
names the line and the reason; a ``redirect`` to an address the role policy
does not allow the account (a pupil forwarding outside) is refused here too.
Errors of the store become NO with RFC 5804 1.3 response codes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from directory.auth import AuthenticationFailed, AuthenticationThrottled, Authenticator
from directory.model import Account
from mailserver.managesieve import wire
from mailserver.managesieve.wire import Literal, WireError, Word
from mailserver.sieve.checks import EXTENSIONS, MAX_REDIRECTS, compile_script
from mailserver.sieve.grammar import MAX_SCRIPT_BYTES, SieveSyntaxError
from mailserver.sieve.scripts import MAX_SCRIPTS, ScriptError, SieveScripts

log = logging.getLogger("schulhof.managesieve")

# (account, address) -> None when the account may redirect there, else the reason.
RedirectCheck = Callable[[Account, str], Awaitable[str | None]]


@dataclass(frozen=True)
class ManageSieveLimits:
    max_line_length: int = 8 * 1024
    max_literal_size: int = MAX_SCRIPT_BYTES
    max_prelogin_literal_size: int = 4 * 1024
    idle_timeout: float = 300.0
    prelogin_timeout: float = 60.0
    max_errors: int = 10


@dataclass(frozen=True)
class SessionServices:
    authenticator: Authenticator
    scripts: SieveScripts
    may_redirect: RedirectCheck
    ssl_context: ssl.SSLContext | None
    limits: ManageSieveLimits
    implementation: str = "Schulhof"


class _Close(Exception):
    pass


class ManageSieveSession:
    def __init__(self, services: SessionServices, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, client_ip: str) -> None:
        self.services = services
        self.reader = reader
        self.writer = writer
        self.client_ip = client_ip
        self.account: Account | None = None
        self.tls = False
        self.errors = 0

    # -- I/O ---------------------------------------------------------------
    async def _line(self) -> bytes:
        limits = self.services.limits
        timeout = limits.idle_timeout if self.account else limits.prelogin_timeout
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), timeout)
        except TimeoutError:
            await self._send(wire.response("BYE", "Idle timeout"))
            raise _Close from None
        except asyncio.LimitOverrunError:
            await self._send(wire.response("BYE", "Line too long"))
            raise _Close from None
        except (asyncio.IncompleteReadError, ConnectionError):
            raise _Close from None
        if len(line) > limits.max_line_length:
            await self._send(wire.response("BYE", "Line too long"))
            raise _Close
        return line

    async def _command(self) -> list[Word]:
        """One command with its literals (RFC 5804 4)."""
        limits = self.services.limits
        limit = limits.max_literal_size if self.account else limits.max_prelogin_literal_size
        parts: list[bytes | Literal] = []
        total = 0
        while True:
            line = await self._line()
            size = wire.literal_announced(line)
            if size is None:
                parts.append(line)
                return wire.tokenize(parts)
            total += size
            if size > limit or total > 2 * limit:
                # A non-synchronising literal is on its way: we cannot skip it safely.
                await self._send(wire.response("BYE", "Literal too large",
                                               code="QUOTA/MAXSIZE"))
                raise _Close
            parts.append(wire.strip_literal_marker(line))
            try:
                parts.append(Literal(await self.reader.readexactly(size)))
            except (asyncio.IncompleteReadError, ConnectionError):
                raise _Close from None

    async def _send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            raise _Close from None

    # -- the conversation ----------------------------------------------------
    def capabilities(self) -> bytes:
        """RFC 5804 1.7: PLAIN only over TLS, STARTTLS only before it."""
        lines = [(b'"IMPLEMENTATION"', self.services.implementation),
                 (b'"SIEVE"', " ".join(sorted(EXTENSIONS - {"comparator-i;octet",
                                                           "comparator-i;ascii-casemap"}))),
                 (b'"SASL"', "PLAIN" if self.tls else ""),
                 (b'"VERSION"', "1.0"),
                 (b'"MAXREDIRECTS"', str(MAX_REDIRECTS))]
        out = b"".join(name + b" " + wire.string(value) + b"\r\n" for name, value in lines)
        if self.services.ssl_context is not None and not self.tls:
            out += b'"STARTTLS"\r\n'
        if self.account is not None:
            out += b'"OWNER" ' + wire.string(self.account.login) + b"\r\n"
        return out

    async def run(self) -> None:
        try:
            await self._send(self.capabilities() + wire.response("OK", "ManageSieve ready"))
            while True:
                try:
                    words = await self._command()
                    await self._dispatch(words)
                except WireError as error:
                    await self._error(str(error))
        except _Close:
            pass
        finally:
            try:
                self.writer.close()
            except RuntimeError:
                pass

    async def _error(self, text: str) -> None:
        self.errors += 1
        if self.errors > self.services.limits.max_errors:
            await self._send(wire.response("BYE", "Too many errors"))
            raise _Close
        await self._send(wire.response("NO", text))

    async def _dispatch(self, words: list[Word]) -> None:
        if not words or not isinstance(words[0], str):
            raise WireError("expected a command")
        name, args = words[0], words[1:]
        handler = _ANY.get(name)
        if handler is None and self.account is not None:
            handler = _AUTHENTICATED.get(name)
        if handler is None:
            known = name in _AUTHENTICATED
            await self._error("Authenticate first" if known else f"Unknown command {name[:20]}")
            return
        await handler(self, args)

    # -- commands in any state ------------------------------------------------
    async def capability(self, args: list[Word]) -> None:
        await self._send(self.capabilities() + wire.response("OK"))

    async def logout(self, args: list[Word]) -> None:
        await self._send(wire.response("OK", "Logout"))
        raise _Close

    async def noop(self, args: list[Word]) -> None:
        """RFC 5804 2.13: an optional tag is echoed in a TAG response code."""
        if args:
            tag = _text(args[0])
            await self._send(b"OK (TAG " + wire.string(tag) + b') "Done"\r\n')
        else:
            await self._send(wire.response("OK", "Done"))

    async def starttls(self, args: list[Word]) -> None:
        """RFC 5804 2.2: TLS, then the capabilities again."""
        context = self.services.ssl_context
        if context is None or self.tls:
            await self._error("TLS not available")
            return
        if getattr(self.reader, "_buffer", b""):
            # Bytes after STARTTLS, sent before the handshake, came in plaintext; read
            # after it they would pass for commands over TLS (STARTTLS command injection,
            # RFC 5804 2.2 says the client waits for the OK). asyncio's StreamReader has
            # no public peek at its buffer.
            log.info("event=managesieve_starttls_pipelined ip=%s", self.client_ip)
            await self._send(wire.response("BYE", "Commands after STARTTLS before TLS"))
            raise _Close
        await self._send(wire.response("OK", "Begin TLS negotiation"))
        if getattr(self.reader, "_buffer", b""):
            # Arrived while the OK was sent; nothing awaits between here and the
            # transport's switch to TLS, so no plaintext can slip in after this check.
            log.info("event=managesieve_starttls_pipelined ip=%s", self.client_ip)
            raise _Close
        try:
            async with asyncio.timeout(30):  # not wait_for: no task (and loop turn) between
                await self.writer.start_tls(context)
        except (ssl.SSLError, TimeoutError, ConnectionError, OSError):
            raise _Close from None
        self.tls = True
        await self._send(self.capabilities() + wire.response("OK", "TLS active"))

    async def authenticate(self, args: list[Word]) -> None:
        """RFC 5804 2.1 with SASL PLAIN (RFC 4616), only over TLS."""
        if self.account is not None:
            await self._error("Already authenticated")
            return
        if not self.tls:
            await self._send(wire.response("NO", "Use STARTTLS first", code="ENCRYPT-NEEDED"))
            return
        if not args or _text(args[0]).upper() != "PLAIN":
            await self._error("Only the PLAIN mechanism is supported")
            return
        if len(args) > 1:
            response = _text(args[1])
        else:
            await self._send(b'""\r\n')
            answer = await self._command()
            if not answer or isinstance(answer[0], int):
                await self._error("Expected a SASL response")
                return
            response = _text(answer[0])
            if response == "*":
                await self._send(wire.response("NO", "Authentication cancelled"))
                return
        try:
            authzid, login, password = base64.b64decode(response, validate=True).decode(
                "utf-8").split("\x00")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            await self._error("Invalid SASL PLAIN response")
            return
        if authzid and authzid.lower() != login.lower():
            await self._send(wire.response("NO", "Authorization identity not permitted"))
            return
        try:
            account = await self.services.authenticator.authenticate(login, password,
                                                                     self.client_ip)
        except AuthenticationThrottled:
            await self._send(wire.response("NO", "Too many failed logins, try again later",
                                           code="TRYLATER"))
            return
        except AuthenticationFailed:
            log.info("event=managesieve_login_failed ip=%s", self.client_ip)
            await self._error("Authentication failed")
            return
        self.account = account
        log.info("event=managesieve_login login=%s ip=%s", account.login, self.client_ip)
        await self._send(wire.response("OK", "Authenticated"))

    # -- commands after authentication -----------------------------------------
    @property
    def _account(self) -> Account:
        assert self.account is not None
        return self.account

    async def _checked(self, content: Word) -> str | None:
        """The script as text when it may be stored, else None (NO already sent)."""
        data = content.data if isinstance(content, Literal) else str(content).encode()
        try:
            program = compile_script(data)
        except SieveSyntaxError as error:
            await self._send(wire.response("NO", f"line {error.line}: {error.reason}"))
            return None
        for line, address in program.redirects:
            refused = await self.services.may_redirect(self._account, address)
            if refused is not None:
                await self._send(wire.response(
                    "NO", f"line {line}: redirect to {address} is not allowed: {refused}"))
                return None
        return data.decode("utf-8")

    async def putscript(self, args: list[Word]) -> None:
        if len(args) != 2:
            raise WireError("PUTSCRIPT needs a name and the script")
        name = _text(args[0])
        script = await self._checked(args[1])
        if script is None:
            return
        await self._store(self.services.scripts.put(self._account.id, name, script))

    async def checkscript(self, args: list[Word]) -> None:
        if len(args) != 1:
            raise WireError("CHECKSCRIPT needs the script")
        if await self._checked(args[0]) is not None:
            await self._send(wire.response("OK"))

    async def havespace(self, args: list[Word]) -> None:
        if len(args) != 2 or not isinstance(args[1], int):
            raise WireError("HAVESPACE needs a name and a size")
        if args[1] > MAX_SCRIPT_BYTES:
            await self._send(wire.response("NO", f"Scripts are at most {MAX_SCRIPT_BYTES} "
                                                 "bytes", code="QUOTA/MAXSIZE"))
        elif not await self.services.scripts.may_add(self._account.id, _text(args[0])):
            await self._send(wire.response("NO", f"At most {MAX_SCRIPTS} scripts",
                                           code="QUOTA/MAXSCRIPTS"))
        else:
            await self._send(wire.response("OK"))

    async def listscripts(self, args: list[Word]) -> None:
        out = b"".join(wire.string(name) + (b" ACTIVE" if active else b"") + b"\r\n"
                       for name, active in await self.services.scripts.names(self._account.id))
        await self._send(out + wire.response("OK"))

    async def getscript(self, args: list[Word]) -> None:
        if len(args) != 1:
            raise WireError("GETSCRIPT needs a name")
        try:
            script = await self.services.scripts.get(self._account.id, _text(args[0]))
        except ScriptError as error:
            await self._send(wire.response("NO", "No such script", code=error.code))
            return
        data = script.encode("utf-8")
        await self._send(b"{%d}\r\n" % len(data) + data + b"\r\n" + wire.response("OK"))

    async def setactive(self, args: list[Word]) -> None:
        if len(args) != 1:
            raise WireError("SETACTIVE needs a name")
        await self._store(self.services.scripts.activate(self._account.id, _text(args[0])))

    async def deletescript(self, args: list[Word]) -> None:
        if len(args) != 1:
            raise WireError("DELETESCRIPT needs a name")
        await self._store(self.services.scripts.delete(self._account.id, _text(args[0])))

    async def renamescript(self, args: list[Word]) -> None:
        if len(args) != 2:
            raise WireError("RENAMESCRIPT needs two names")
        await self._store(self.services.scripts.rename(self._account.id, _text(args[0]),
                                                       _text(args[1])))

    async def unauthenticate(self, args: list[Word]) -> None:
        self.account = None
        await self._send(wire.response("OK"))

    async def _store(self, operation: Awaitable[None]) -> None:
        try:
            await operation
        except ScriptError as error:
            await self._send(wire.response("NO", str(error) or type(error).__name__,
                                           code=error.code))
            return
        log.info("event=managesieve_changed login=%s", self._account.login)
        await self._send(wire.response("OK"))


def _text(word: Word) -> str:
    if isinstance(word, Literal):
        try:
            return word.data.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("string is not UTF-8") from None
    if isinstance(word, int):
        raise WireError("expected a string")
    return word


_Handler = Callable[[ManageSieveSession, list[Word]], Awaitable[None]]
_ANY: dict[str, _Handler] = {
    "CAPABILITY": ManageSieveSession.capability, "LOGOUT": ManageSieveSession.logout,
    "NOOP": ManageSieveSession.noop, "STARTTLS": ManageSieveSession.starttls,
    "AUTHENTICATE": ManageSieveSession.authenticate,
}
_AUTHENTICATED: dict[str, _Handler] = {
    "PUTSCRIPT": ManageSieveSession.putscript, "CHECKSCRIPT": ManageSieveSession.checkscript,
    "HAVESPACE": ManageSieveSession.havespace, "LISTSCRIPTS": ManageSieveSession.listscripts,
    "GETSCRIPT": ManageSieveSession.getscript, "SETACTIVE": ManageSieveSession.setactive,
    "DELETESCRIPT": ManageSieveSession.deletescript,
    "RENAMESCRIPT": ManageSieveSession.renamescript,
    "UNAUTHENTICATE": ManageSieveSession.unauthenticate,
}

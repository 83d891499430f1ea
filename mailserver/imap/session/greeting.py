"""Commands valid in any state and before login (RFC 9051 6.1, 6.2):
CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN, AUTHENTICATE PLAIN."""

from __future__ import annotations

from typing import TYPE_CHECKING

from directory.auth import AuthenticationFailed, AuthenticationThrottled
from mailserver.imap.session.core import ANY, NOT_AUTH, State
from mailserver.imap.wire import commands as c
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.errors import ParseError
from mailserver.imap.wire.framer import CommandUnit
from mailserver.imap.wire.parser import parse_sasl_response

if TYPE_CHECKING:
    from mailserver.imap.session.core import ImapSession

SERVER_ID = (("name", "Schulhof"), ("vendor", "Schulhof"), ("support-url", None))


async def capability(s: ImapSession, cmd: c.Capability) -> r.Tagged:
    """RFC 9051 6.1.1."""
    s.send(r.CapabilityData(s.capabilities()))
    return r.Tagged(cmd.tag, "OK", "CAPABILITY completed")


async def noop(s: ImapSession, cmd: c.Noop) -> r.Tagged:
    """RFC 9051 6.1.2: the poll after every command reports the updates."""
    if s.view is not None:
        await s.poll(allow_expunge=True, force=True)
    return r.Tagged(cmd.tag, "OK", "NOOP completed")


async def logout(s: ImapSession, cmd: c.Logout) -> r.Tagged:
    """RFC 9051 6.1.3."""
    s.send(r.Untagged("BYE", "Logging out"))
    s.state = State.LOGOUT
    return r.Tagged(cmd.tag, "OK", "LOGOUT completed")


async def id_command(s: ImapSession, cmd: c.Id) -> r.Tagged:
    """RFC 2971 3: we say who we are, and log nothing the client sent."""
    s.send(r.IdData(tuple((k, v) for k, v in SERVER_ID if v is not None)))
    return r.Tagged(cmd.tag, "OK", "ID completed")


async def starttls(s: ImapSession, cmd: c.StartTls) -> r.Tagged | None:
    """RFC 9051 6.2.1: OK first, then the handshake; the session restarts
    from the not-authenticated state with a fresh framer."""
    if s.channel.tls_active or not s.channel.tls_available:
        return r.Tagged(cmd.tag, "BAD", "TLS is already active or not available")
    s.send(r.Tagged(cmd.tag, "OK", "Begin TLS negotiation now"))
    await s.channel.start_tls()
    return None


async def login(s: ImapSession, cmd: c.Login) -> r.Tagged:
    """RFC 9051 6.2.3; refused on cleartext (LOGINDISABLED, RFC 9051 6.2.3)."""
    if not s.channel.tls_active:
        return r.Tagged(cmd.tag, "NO", "LOGIN requires TLS (use STARTTLS)",
                        r.Code("PRIVACYREQUIRED"))
    return await _authenticate(s, cmd.tag, cmd.username, cmd.password)


async def authenticate(s: ImapSession, cmd: c.Authenticate) -> r.Tagged:
    """AUTHENTICATE PLAIN (RFC 4616) with SASL-IR (RFC 4959)."""
    if cmd.mechanism != "PLAIN":
        return r.Tagged(cmd.tag, "NO", "Unsupported mechanism", r.Code("CANNOT"))
    if not s.channel.tls_active:
        return r.Tagged(cmd.tag, "NO", "Authentication requires TLS",
                        r.Code("PRIVACYREQUIRED"))
    response = cmd.initial_response
    if response is None:
        s.send(r.Continuation(challenge=b""))
        await s.channel.drain()
        event = await s.channel.next_event(s.services.idle_timeout)
        if not isinstance(event, CommandUnit):
            return r.Tagged(cmd.tag, "BAD", "Expected a SASL response line")
        try:
            response = parse_sasl_response(event)
        except ParseError as error:
            return r.Tagged(cmd.tag, "BAD", error.text)
        if response is None:
            return r.Tagged(cmd.tag, "BAD", "Authentication cancelled")
    parts = response.split(b"\x00")
    if len(parts) != 3:
        return r.Tagged(cmd.tag, "BAD", "Malformed PLAIN response")
    try:
        authzid, authcid, password = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError:
        return r.Tagged(cmd.tag, "BAD", "PLAIN response is not UTF-8")
    if authzid and authzid.lower() != authcid.lower():
        # No proxy authorisation: a user may only act as themselves.
        return r.Tagged(cmd.tag, "NO", "Authorization identity not allowed",
                        r.Code("AUTHORIZATIONFAILED"))
    return await _authenticate(s, cmd.tag, authcid, password)


async def _authenticate(s: ImapSession, tag: str, user: str, password: str) -> r.Tagged:
    try:
        account = await s.services.authenticator.authenticate(user, password, s.channel.client_ip)
    except AuthenticationThrottled:
        return r.Tagged(tag, "NO", "Too many failed logins, try again later",
                        r.Code("UNAVAILABLE"))
    except AuthenticationFailed:
        return r.Tagged(tag, "NO", "Invalid credentials", r.Code("AUTHENTICATIONFAILED"))
    await s.logged_in(account)
    return r.Tagged(tag, "OK", "Logged in", r.CapabilityCode(s.capabilities()))


HANDLERS = {
    c.Capability: (capability, ANY),
    c.Noop: (noop, ANY),
    c.Logout: (logout, ANY),
    c.Id: (id_command, ANY),
    c.StartTls: (starttls, NOT_AUTH),
    c.Login: (login, NOT_AUTH),
    c.Authenticate: (authenticate, NOT_AUTH),
}

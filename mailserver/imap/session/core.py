"""The IMAP session state machine (RFC 9051 3, RFC 3501 3): not
authenticated -> authenticated -> selected -> logout.

One ``ImapSession`` per connection runs the command loop: take a framed
command from the channel, parse it (wire layer), check that it is valid in
the current state, run its handler (one module per group of commands), tell
the client about other sessions' changes to the selected mailbox, send the
tagged result.  Handlers return the tagged response and send untagged data
through ``send``; domain errors are translated to ``NO [code]`` here, once,
and any other exception becomes ``NO [SERVERBUG]`` without ending the session.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mailserver.imap.mailbox_states import adopt_uids
from mailserver.imap.session.capabilities import capabilities
from mailserver.imap.session.errors import translate
from mailserver.imap.session.view import ChangedMessage, SelectedView
from mailserver.imap.wire import commands as c
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.errors import ParseError
from mailserver.imap.wire.framer import (
    CommandUnit,
    ContinuationRequest,
    FramerEvent,
    FramingFailure,
    LiteralTooBig,
)
from mailserver.imap.wire.parser import parse_command
from mailserver.imap.wire.serializer import serialize_response

if TYPE_CHECKING:
    from directory.auth import Authenticator
    from mailserver.imap.fetching import MimeItemCache, ParsedMessageCache
    from mailserver.imap.mailbox_states import MailboxStates
    from mailserver.store import MailStore
    from mailserver.store.bulk_reads import BodyCache, HeaderCache
    from mailserver.store.model import FlagMode, StoreResult

log = logging.getLogger("schulhof.imap")


class State(enum.Enum):
    NOT_AUTHENTICATED = "not-authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY = frozenset(State) - {State.LOGOUT}
NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})


class Channel(Protocol):
    """What the session needs of its connection (mailserver.imap.server)."""

    client_ip: str
    tls_active: bool

    @property
    def tls_available(self) -> bool: ...

    async def next_event(self, timeout: float | None) -> FramerEvent | None: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    async def start_tls(self) -> None: ...

    def authenticated(self) -> None:
        """Logged in: the connection lifts its pre-login limits (issue 19.6)."""


@dataclass(frozen=True)
class SessionServices:
    """What every session of one server shares: the store, the authenticator
    and the limits (constructor arguments, never globals)."""

    store: MailStore
    authenticator: Authenticator
    max_literal_size: int
    idle_timeout: float
    max_errors: int
    # Shared by all sessions of the service (see conf.wiring.imap): mailbox
    # states (mailserver.imap.mailbox_states.MailboxStates), header blocks
    # (mailserver.store.bulk_reads.HeaderCache), rendered ENVELOPE and
    # BODYSTRUCTURE items (mailserver.imap.fetching.MimeItemCache). Without
    # them the session reads, parses and writes through the store alone.
    states: MailboxStates | None = None
    headers: HeaderCache | None = None
    bodies: BodyCache | None = None
    mime_items: MimeItemCache | None = None

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: FlagMode,
                          flags: Iterable[str],
                          unchanged_since: int | None = None) -> StoreResult:
        """STORE (RFC 9051 6.4.6), group-committed by the store with the other
        sessions' writes (``mailserver.store.write_queue``)."""
        return await self.store.store_flags(mailbox_id, uids, mode, flags, unchanged_since)


Handler = Callable[["ImapSession", Any], Awaitable["r.Tagged | None"]]

# Commands during whose responses an EXPUNGE must not be sent (RFC 9051 7.5.1,
# RFC 3501 7.4.1): the client could not tell which numbers had moved.
_NO_EXPUNGE_DURING = (c.Fetch, c.Store, c.Search)


class ImapSession:
    """One connection's IMAP session."""

    def __init__(self, services: SessionServices, channel: Channel) -> None:
        self.services = services
        self.store = services.store
        self.channel = channel
        self.state = State.NOT_AUTHENTICATED
        self.account_id: int | None = None
        self.login: str = ""
        self.view: SelectedView | None = None
        self.enabled: set[str] = set()
        self.condstore = False
        self.saved_uids: tuple[int, ...] = ()
        self.errors = 0
        self.subscription: Any = None
        self._dirty = False
        self._dirty_modseq = 0  # the highest MODSEQ the change feed told of
        self._mailbox_gone = False
        self._cache: ParsedMessageCache | None = None
        # (view, first, up_to): \Recent claimed by this session's APPEND in
        # its own transaction, noted once the view holds the new UID.
        self.claimed_recent: tuple[SelectedView, int, int] | None = None

    @property
    def account(self) -> int:
        """The logged-in account's id, for the handlers of the authenticated and
        selected states (the dispatcher calls no other before LOGIN)."""
        if self.account_id is None:
            raise RuntimeError("IMAP session not authenticated")
        return self.account_id

    # --- flags of the session ------------------------------------------------

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def utf8(self) -> bool:
        # RFC 9051 5.1: IMAP4rev2 mailbox names are UTF-8.
        return self.rev2

    @property
    def cache(self) -> ParsedMessageCache:
        """A parsed-message cache made on first FETCH/SEARCH: idle sessions
        do not carry one."""
        if self._cache is None:
            from mailserver.imap.fetching import ParsedMessageCache

            self._cache = ParsedMessageCache(entries=2, max_bytes=8 * 1024 * 1024)
        return self._cache

    def capabilities(self) -> tuple[str, ...]:
        return capabilities(tls=self.channel.tls_active,
                            tls_available=self.channel.tls_available,
                            authenticated=self.state in AUTH,
                            append_limit=self.services.max_literal_size)

    # --- output ----------------------------------------------------------------

    def send(self, *responses: r.Response) -> None:
        view = self.view
        for response in responses:
            if view is not None and isinstance(response, r.FetchData):
                for item in response.items:
                    if isinstance(item, r.FlagsItem):
                        for announce in view.keyword_announcement((item.flags,)):
                            self.channel.write(serialize_response(announce, utf8=self.utf8))
                        if not self.rev2:
                            response = view.with_recent(response)
                        break
            self.channel.write(serialize_response(response, utf8=self.utf8))

    def bad(self, tag: str | None, text: str) -> None:
        """A BAD answer, counted towards ``max_errors`` consecutive ones
        (then BYE)."""
        self.errors += 1
        if tag is None:
            self.send(r.Untagged("BAD", text))
        else:
            self.send(r.Tagged(tag, "BAD", text))
        if self.errors >= self.services.max_errors:
            self.send(r.Untagged("BYE", "Too many errors, closing"))
            self.state = State.LOGOUT

    # --- the loop ----------------------------------------------------------------

    async def run(self) -> None:
        """Greet, then serve commands until LOGOUT, BYE or the peer leaves."""
        from mailserver.imap.server import ConnectionClosed

        self.send(r.Untagged("OK", "Schulhof IMAP server ready",
                             r.CapabilityCode(self.capabilities())))
        try:
            while self.state is not State.LOGOUT:
                await self.channel.drain()
                event = await self.channel.next_event(self.services.idle_timeout)
                if event is None:
                    self.send(r.Untagged("BYE", "Autologout; idle for too long"))
                    break
                await self.handle_event(event)
            await self.channel.drain()
        except ConnectionClosed:
            pass
        finally:
            self.close_subscription()

    async def handle_event(self, event: FramerEvent) -> None:
        if isinstance(event, ContinuationRequest):
            self.send(r.Continuation())
        elif isinstance(event, LiteralTooBig):
            # RFC 7889 / RFC 9051 7.1: the command is refused, the session goes on.
            text = f"Literal of {event.size} octets is over the limit"
            if event.tag is None:
                self.send(r.Untagged("NO", text, r.Code("TOOBIG")))
            else:
                self.send(r.Tagged(event.tag, "NO", text, r.Code("TOOBIG")))
        elif isinstance(event, FramingFailure):
            self.send(r.Untagged("BYE", event.text))
            self.state = State.LOGOUT
        else:
            await self.execute(event)

    async def execute(self, unit: CommandUnit) -> None:
        from mailserver.imap.server import ConnectionClosed
        from mailserver.imap.session.registry import HANDLERS

        try:
            command = parse_command(unit, utf8=self.utf8)
        except ParseError as error:
            if error.status == "NO" and error.tag is not None:
                code = r.Code(*error.code.split(" ", 1)) if error.code else None
                self.send(r.Tagged(error.tag, "NO", error.text, code))
            else:
                self.bad(error.tag, f"Invalid command: {error.text}")
            return
        handler, states = HANDLERS[type(command)]
        if self.state not in states:
            self.bad(command.tag, f"Command not valid in the {self.state.value} state")
            return
        condstore_before = self.condstore
        try:
            final = await handler(self, command)
        except ConnectionClosed:
            raise
        except Exception as error:
            final = self._failure(command, error)
        if final is None:
            return  # STARTTLS: answered before the handshake, nothing follows
        if self.state is State.SELECTED and not isinstance(command, c.Logout):
            try:
                await self.poll(allow_expunge=not (isinstance(command, _NO_EXPUNGE_DURING)
                                                   and not getattr(command, "uid", False)))
            except Exception as error:  # a failed poll must not lose the tagged reply
                log.exception("event=imap_poll_failed account=%s", self.account_id)
                del error
        if self.view is not None and final.status == "OK" and (
                (not condstore_before and self.condstore and not isinstance(command, c.Select))
                or (self.qresync and isinstance(command, c.Expunge))):
            # RFC 7162 3.2.10: with QRESYNC, EXPUNGE / UID EXPUNGE report the
            # mailbox's HIGHESTMODSEQ after the expunge (as Dovecot does).
            final = self._with_highestmodseq(final)
        if final.status == "BAD":
            self.bad(final.tag, final.text)
        else:
            # Only consecutive errors end a session (as in Dovecot): a client
            # that now and then sends something odd is never cut off.
            self.errors = 0
            self.send(final)

    def _with_highestmodseq(self, final: r.Tagged) -> r.Tagged:
        """RFC 7162 3.1: the first CONDSTORE-enabling command (FETCH MODSEQ,
        STORE UNCHANGEDSINCE, SEARCH MODSEQ, ENABLE CONDSTORE, ...) issued
        while a mailbox is selected tells the client the mailbox's
        HIGHESTMODSEQ, in the tagged OK (or an untagged OK when the tagged
        one carries another code)."""
        assert self.view is not None
        code = r.NumberCode("HIGHESTMODSEQ", self.view.modseq)
        if final.code is None:
            return dataclasses.replace(final, code=code)
        self.send(r.Untagged("OK", "Highest", code))
        return final

    def _failure(self, command: c.Command, error: Exception) -> r.Tagged:
        translated = translate(command.tag, error, target_mailbox=isinstance(
            command, c.Copy | c.Move | c.Append))
        if translated is not None:
            return translated
        log.exception("event=imap_command_failed command=%s account=%s",
                      type(command).__name__, self.account_id)
        return r.Tagged(command.tag, "NO", "Internal server error", r.Code("SERVERBUG"))

    # --- account and selected mailbox -------------------------------------------

    async def logged_in(self, account: Any) -> None:
        """Enter the authenticated state (RFC 9051 6.2.3) for ``account``."""
        self.account_id = account.id
        self.login = account.login
        self.state = State.AUTHENTICATED
        self.channel.authenticated()
        await self.store.ensure_default_mailboxes(account.id)
        feed = getattr(self.store, "feed", None)
        if feed is not None:
            self.subscription = feed.subscribe(account.id)

    def close_subscription(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None

    def select(self, view: SelectedView | None) -> None:
        self.view = view
        self.saved_uids = ()
        self._dirty = False
        self._dirty_modseq = 0
        self._mailbox_gone = False
        self.claimed_recent = None
        self.state = State.SELECTED if view is not None else State.AUTHENTICATED

    def note_changes(self, changes: list[Any]) -> None:
        """Feed notifications -> whether the selected mailbox needs a poll."""
        if self.view is None:
            return
        for change in changes:
            if change.mailbox_id != self.view.mailbox_id:
                continue
            if change.deleted:
                self._mailbox_gone = True
            elif change.highestmodseq > self.view.modseq:
                self._dirty = True
                self._dirty_modseq = max(self._dirty_modseq, change.highestmodseq)

    def known_modseq(self) -> int | None:
        """The selected mailbox's HIGHESTMODSEQ as far as this session knows
        it: its own view and every change the feed told of (the feed is told
        after each commit, so every commit that finished before the command
        arrived is included).  A shared mailbox state at least this recent
        answers the command without reading the store again.  None when
        there is no feed: then only a fresh read will do."""
        view = self.view
        if view is None or self.subscription is None:
            return None
        self.note_changes(self.subscription.pending())
        return max(view.modseq, self._dirty_modseq)

    async def poll(self, *, allow_expunge: bool, force: bool = False) -> None:
        """Tell the client what changed in the selected mailbox since it last
        heard (RFC 9051 5.2, 7.4.1): EXPUNGE/VANISHED, EXISTS, FETCH FLAGS."""
        view = self.view
        if view is None:
            return
        if self.subscription is not None:
            self.note_changes(self.subscription.pending())
        else:
            force = True
        if self._mailbox_gone:
            # RFC 9051 7.1.5: the mailbox went away under us; nothing we could
            # send keeps the numbers right, so end the session.
            self.send(r.Untagged("BYE", "Selected mailbox was deleted"))
            self.state = State.LOGOUT
            return
        if self._dirty or force:
            target = None if force else self._dirty_modseq
            self._dirty = False
            self._dirty_modseq = 0
            changes, state = await self._changes(view, target)
            self.send(*view.apply_changes(
                (ChangedMessage(m.uid, frozenset(m.flags), m.modseq) for m in changes.changed),
                changes.vanished, changes.highestmodseq, allow_expunge=allow_expunge,
                qresync=self.qresync, condstore=self.condstore))
            if state is not None and view.modseq == state.modseq:
                adopt_uids(view, state)
        elif allow_expunge and view.pending_expunge:
            self.send(*view.flush_expunges(qresync=self.qresync))
        claimed = self.claimed_recent
        if claimed is not None and self.view is view and view.largest_uid + 1 >= claimed[2]:
            self.claimed_recent = None
            if claimed[0] is view and view.note_recent(claimed[1], claimed[2]):
                self.send(r.RecentData(view.recent_count))
        if self.view is view and view.largest_uid >= view.recent_asked:
            await self.claim_recent(view, view.largest_uid + 1, report=True)

    async def claim_recent(self, view: SelectedView, up_to: int, *, report: bool) -> None:
        """Make the messages below ``up_to`` that no earlier session saw
        recent to this one (RFC 3501 2.3.2; EXAMINE only looks, 6.3.2) and
        send ``* n RECENT`` when that changed the count (RFC 3501 7.3.2).
        IMAP4rev2 has no \\Recent (RFC 9051 Appendix E): nothing to do."""
        if self.rev2:
            return
        first = await self.store.claim_recent(view.mailbox_id, up_to,
                                              claim=not view.read_only)
        if first is None:
            return
        if view.note_recent(first, up_to) and report:
            self.send(r.RecentData(view.recent_count))

    async def _changes(self, view: SelectedView, target: int | None) -> tuple[Any, Any]:
        """Changes after the view's MODSEQ (RFC 7162 3.1.4.1, 3.2.10): from
        the shared mailbox state, refreshed from the store unless the feed's
        ``target`` MODSEQ is already in it (``None``: always refresh); from
        the store when the state cannot say."""
        states = self.services.states
        if states is not None:
            state = await states.current(view.mailbox_id, at_least=target)
            if state is not None:
                changes = state.changes_since(view.modseq)
                if changes is not None:
                    return changes, state
        return await self.store.changes_since(view.mailbox_id, view.modseq), None

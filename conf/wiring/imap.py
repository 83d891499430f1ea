"""Wiring of the IMAP service into a School (see conf.wiring): the STARTTLS
listener (settings.listen.imap) and the implicit-TLS one (listen.imaps),
with the school's certificate, store, authenticator and limits."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from federation.tls import server_tls_context
from mailserver.imap.fetching import MimeItemCache
from mailserver.imap.mailbox_states import MailboxStates
from mailserver.imap.server import ImapConnection, ImapLimits, ImapServer
from mailserver.imap.session import ImapSession, SessionServices
from mailserver.imap.wire.framer import CommandUnit
from mailserver.imap.wire.parser import command_name
from mailserver.store.bulk_reads import BodyCache, HeaderCache

__all__ = ["build", "server_tls_context"]  # server_tls_context: the webmail's too

if TYPE_CHECKING:
    from conf.app import School, Service

log = logging.getLogger("schulhof.imap")


def build(school: School) -> list[Service]:
    settings = school.settings
    listen = settings.listen
    if listen.imap < 0 and listen.imaps < 0:
        return []
    cert = settings.path(settings.tls.certificate)
    context = school.tls.context() if cert.exists() else None
    imap = settings.imap
    store = school.mail_store
    # Shared by this service's sessions only (two schools never share them).
    states = MailboxStates(store.db)
    # This service's committed STOREs and EXPUNGEs go into the shared states directly.
    store.add_flag_listener(states.apply_store)
    store.add_expunge_listener(states.apply_expunge)
    services = SessionServices(
        store=store, authenticator=school.authenticator,
        max_literal_size=imap.max_literal_size, idle_timeout=imap.idle_timeout_seconds,
        max_errors=imap.max_errors, states=states,
        headers=HeaderCache(), bodies=BodyCache(max_bytes=32 * 1024 * 1024,
                                                max_entry=256 * 1024),
        mime_items=MimeItemCache())

    metrics = school.metrics

    async def run_session(connection: ImapConnection) -> None:
        metrics.imap_connections.inc()
        started = time.monotonic()
        session = CountingImapSession(services, connection)
        try:
            await session.run()
        finally:
            metrics.imap_connections.dec()
            # One INFO line per connection (the operator's view); commands are DEBUG.
            log.info("event=imap_session ip=%s commands=%d seconds=%.1f", connection.client_ip,
                     session.commands, time.monotonic() - started)

    counters: dict[str, Any] = {}  # command name -> its labelled counter

    class CountingImapSession(ImapSession):
        """Counts each command for the metrics (one per command unit, parsed or not)."""

        commands = 0

        async def execute(self, unit: CommandUnit) -> None:
            name = command_name(unit.segments[0] if unit.segments else b"")
            counter = counters.get(name)
            if counter is None:  # a bounded set of names (command_name)
                counter = counters[name] = metrics.imap_commands.labels(name)
            counter.inc()
            self.commands += 1
            await super().execute(unit)

    limits = ImapLimits(max_line_length=imap.max_line_length,
                        max_literal_size=imap.max_literal_size,
                        idle_timeout=imap.idle_timeout_seconds, max_errors=imap.max_errors,
                        max_connections_per_ip=imap.max_connections_per_ip,
                        prelogin_timeout=imap.prelogin_timeout_seconds,
                        max_prelogin_literal_size=imap.max_prelogin_literal_size)
    return [ImapServer(bind=listen.bind, imap_port=listen.imap, imaps_port=listen.imaps,
                       ssl_context=context, limits=limits, session_runner=run_session,
                       reuse_port=listen.reuse_port)]

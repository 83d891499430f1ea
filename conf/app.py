"""The composition root: builds one school's server from its settings.

Nothing below ``conf`` reads settings or environment itself; this module
hands each object what it needs.  Two ``School`` objects can live in one
process (the federation tests run several schools side by side).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from conf.settings import Settings
from conf.wiring.login_counter import CountingAuthenticator
from directory.audit import AuditLog
from directory.auth import Authenticator, LoginThrottle
from directory.broadcast import Broadcast, LocalBroadcast
from directory.db import Database
from directory.directory_relay import DirectoryRelay
from directory.passwords import PasswordHasher
from directory.policy import PolicyRules, RolePolicy
from directory.service import Directory
from directory.throttle_relay import ThrottleRelay
from directory.verified_logins import VerifiedLogins

# What only some commands use is imported where it is first needed: a command
# such as ``schulhof export`` then loads neither the network stack (aiohttp, DNS,
# prometheus-client, cryptography) nor Alembic (issue 17: export under 100 MiB).
if TYPE_CHECKING:
    from conf.wiring.bridge import MailBridge
    from federation.metrics import SchoolMetrics
    from federation.resolver import Resolver
    from federation.rspamd import RspamdClient
    from federation.tls import CertificateStore
    from mailserver.sieve.scripts import SieveScripts
    from mailserver.store import MailStore

log = logging.getLogger("schulhof")


class Service(Protocol):
    """A network service of the school (SMTP, IMAP, Matrix, web)."""

    async def start(self) -> list[str]:
        """Start listening; return one description per listener for the log."""

    async def stop(self) -> None:
        """Stop accepting, finish or roll back in-flight work."""


def build_policy(settings: Settings) -> RolePolicy:
    p = settings.policy
    return RolePolicy(PolicyRules(
        pupils_external=p.pupils_external, pupils_partner_schools=p.pupils_partner_schools,
        parents_reach_pupils=p.parents_reach_pupils, parents_external=p.parents_external))


@dataclass
class School:
    settings: Settings
    db: Database
    hasher: PasswordHasher
    directory: Directory
    authenticator: Authenticator
    throttle: LoginThrottle
    services: list[Service] = field(default_factory=list)
    started: bool = False  # every service listens (the readiness check)
    # How this process tells the school's other processes about changes (several
    # serve workers or hosts; conf.workers chooses); LocalBroadcast: one process.
    broadcast: Broadcast = field(default_factory=LocalBroadcast)
    # False in all serve workers but the first: the outbound queue worker and
    # the group-room sync run once per school.
    singletons: bool = True
    # serve's worker number (0 with one process): worker I serves metrics on port + I.
    worker_index: int = 0
    _mail_store: MailStore | None = None
    _resolver: Resolver | None = None
    _sieve_scripts: SieveScripts | None = None
    _rspamd: RspamdClient | None = None
    _tls: CertificateStore | None = None
    _audit: AuditLog | None = None
    _mail_bridge: MailBridge | None = None
    _metrics: SchoolMetrics | None = None
    # What a command built and must release when the school closes (a federation
    # client's connections, say).
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def close_later(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` when the school closes."""
        self._closers.append(closer)

    @property
    def metrics(self) -> SchoolMetrics:
        """This process's Prometheus metrics (built with the first service that counts)."""
        if self._metrics is None:
            from federation.metrics import SchoolMetrics

            self._metrics = SchoolMetrics()
            if isinstance(self.authenticator, CountingAuthenticator):
                self.authenticator.metrics = self._metrics
        return self._metrics

    @property
    def mail_bridge(self) -> MailBridge:
        """Mail to group rooms (conf.wiring.bridge): SMTP feeds it, the messenger serves it."""
        if self._mail_bridge is None:
            from conf.wiring.bridge import MailBridge, webmail_url

            webmail = webmail_url(self.settings) if self.settings.listen.web >= 0 else ""
            self._mail_bridge = MailBridge(enabled=self.settings.bridge.mail_to_rooms,
                                           directory=self.directory, webmail=webmail)
        return self._mail_bridge

    @property
    def audit(self) -> AuditLog:
        """The audit log every admin action (command line or web) writes to."""
        if self._audit is None:
            self._audit = AuditLog(self.db)
        return self._audit

    @property
    def resolver(self) -> Resolver:
        """The DNS resolver for everything that finds or checks other servers."""
        if self._resolver is None:
            from federation.resolver import Resolver

            f = self.settings.federation
            self._resolver = Resolver(f.dns_nameservers, f.dns_port,
                                      cache_size=10_000 if f.dns_cache else 0)
        return self._resolver

    @property
    def mail_store(self) -> MailStore:
        """The mail store shared by SMTP, IMAP and the messenger bridge."""
        if self._mail_store is None:
            from mailserver.changes import ChangeFeed
            from mailserver.store import MailStore

            q = self.settings.quota
            quota_bytes = {role: getattr(q, role) * 1024 * 1024
                           for role in ("pupil", "parent", "teacher", "staff", "admin")}
            self._mail_store = MailStore(self.db, quota_bytes, ChangeFeed())
            if self.settings.spam.rspamd_controller_url:
                from mailserver.spam_training import JunkTrainer

                trainer = JunkTrainer(self._mail_store.read_blob, self.rspamd.learn)
                self._mail_store.filing_observers.append(trainer.filed)
        return self._mail_store

    @property
    def sieve_scripts(self) -> SieveScripts:
        """The accounts' Sieve scripts: delivery runs them, ManageSieve edits them."""
        if self._sieve_scripts is None:
            from mailserver.sieve.scripts import SieveScripts

            self._sieve_scripts = SieveScripts(self.db)
        return self._sieve_scripts

    @property
    def tls(self) -> CertificateStore:
        """The certificate and key of every TLS listener, reloadable (SIGHUP)."""
        if self._tls is None:
            from federation.tls import CertificateStore

            s = self.settings
            self._tls = CertificateStore(str(s.path(s.tls.certificate)),
                                         str(s.path(s.tls.key)))
        return self._tls

    @property
    def rspamd(self) -> RspamdClient:
        """The rspamd client (scanning on the MX, training from Junk moves)."""
        if self._rspamd is None:
            from federation.rspamd import RspamdClient

            spam = self.settings.spam
            self._rspamd = RspamdClient(spam.rspamd_url, spam.rspamd_controller_url,
                                        timeout=spam.timeout_seconds,
                                        password=spam.rspamd_password)
        return self._rspamd

    @classmethod
    async def open(cls, settings: Settings, *, migrate: bool = True) -> School:
        db = Database(settings.database_url, echo=settings.database.echo)
        if migrate:
            from conf.migrate import upgrade

            await upgrade(db)
        hasher = PasswordHasher()
        directory = Directory(
            db, hasher, build_policy(settings), domain=settings.school.domain,
            extra_domains=settings.school.extra_domains,
            partner_domains=settings.partner_domains)
        a = settings.auth
        throttle = LoginThrottle(free_failures=a.free_failures, max_delay=a.max_delay_seconds,
                                 window=a.failure_window_seconds,
                                 account_free_failures=a.account_free_failures,
                                 account_max_delay=a.account_max_delay_seconds,
                                 ip_failing_accounts=a.ip_failing_accounts)
        authenticator = CountingAuthenticator(directory, hasher, throttle,
                                              VerifiedLogins(ttl=a.verified_login_seconds))
        return cls(settings, db, hasher, directory, authenticator, throttle)

    def build_services(self) -> list[Service]:
        """The network services that exist so far, wired to this school's objects."""
        from conf.wiring import (
            digest,
            imap,
            managesieve,
            matrix,
            metrics,
            outbound,
            retention,
            smtp,
            webmail,
        )

        return [service for wiring in (smtp, imap, managesieve, matrix, webmail, outbound,
                                       retention, digest, metrics)
                for service in wiring.build(self)]

    async def start(self) -> None:
        from federation.tls import check_certificate

        certificate = self.settings.path(self.settings.tls.certificate)
        if certificate.exists():  # CertificateProblem: a clear reason, before any listener
            check_certificate(str(certificate), str(self.settings.path(self.settings.tls.key)))
        self.services = self.build_services()
        if self.broadcast.shared:
            # Every listener is registered before the broadcast starts listening.
            from mailserver.change_relay import ChangeRelay

            ChangeRelay(self.mail_store.feed, self.broadcast, self.db)
            ThrottleRelay(self.throttle, self.broadcast)
            DirectoryRelay(self.directory.changes, self.broadcast)
            await self.broadcast.start()
        for service in self.services:
            for listener in await service.start():
                log.info("event=listening %s", listener)
        self.started = True

    async def stop(self) -> None:
        self.started = False
        for service in reversed(self.services):
            await service.stop()
        self.services = []
        if self.broadcast.shared:
            await self.broadcast.stop()

    async def close(self) -> None:
        await self.stop()
        while self._closers:
            await self._closers.pop()()
        if self._rspamd is not None:
            await self._rspamd.close()
        await self.db.dispose()
        self.hasher.close()

    async def serve_until(self, stop: asyncio.Event,
                          on_ready: Callable[[], None] | None = None) -> None:
        await self.start()
        if on_ready is not None:
            on_ready()
        log.info("event=ready domain=%s services=%d", self.settings.school.domain,
                 len(self.services))
        try:
            await stop.wait()
        finally:
            log.info("event=stopping")
            await self.close()
            log.info("event=stopped")

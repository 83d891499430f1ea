"""Wiring of outbound delivery into a School: the queue worker as a Service.

Builds, from ``settings.federation``: the DNS resolver (``dns_nameservers``,
``dns_port``), the SMTP client (``remote_smtp_port``; outgoing connections
bound to the listen address when it is a specific IP, so SPF sees it), the
retry schedule (``first_retry_seconds``, ``delay_warning_hours``,
``retry_give_up_hours``), and from the school: the DKIM keys in
``<base_dir>/keys``, the mail store (bounces go into the sender's INBOX).

Transport security: MTA-STS (policies fetched over HTTPS through the same
resolver, cached in ``mta_sts_policies``) and DANE (TLSA records trusted
only when the resolver validated them).  :class:`OutboundTrust` holds what
the settings do not have yet (a CA file instead of the system trust store,
the policy server's port): tests pass it to :class:`OutboundService`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conf.commands.school import KEYS_DIR
from federation.dane import DaneLookup
from federation.keys import SchoolKeyPaths, load_dkim_keys
from federation.mta_sts import FetchConfig, MtaSts, PolicyFetcher
from federation.smtp_out import ClientConfig, OutboundClient
from mailserver.outbound.bounces import InboxBounces
from mailserver.outbound.queue import OutboundQueue
from mailserver.outbound.schedule import RetrySchedule
from mailserver.outbound.signing import MessageSigner
from mailserver.outbound.sts_store import DatabasePolicyCache
from mailserver.outbound.tls_policy import TlsPolicies
from mailserver.outbound.worker import OutboundWorker, WorkerConfig

if TYPE_CHECKING:
    from conf.app import School, Service
    from conf.settings import Settings

log = logging.getLogger("schulhof.outbound")


def _specific_ip(text: str) -> str | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if ip.is_unspecified else str(ip)


def worker_config(settings: Settings) -> WorkerConfig:
    f = settings.federation
    return WorkerConfig(
        hostname=settings.smtp_hostname,
        postmaster=f"MAILER-DAEMON@{settings.school.domain}",
        schedule=RetrySchedule.from_settings(f.first_retry_seconds, f.retry_give_up_hours,
                                             f.delay_warning_hours))


@dataclass(frozen=True)
class OutboundTrust:
    """Trust settings of outbound TLS (defaults: production)."""

    ca_file: str | None = None  # None: the system trust store (SMTP and MTA-STS fetches)
    mta_sts_port: int = 443
    mta_sts: bool = True
    dane: bool = True


def client_config(settings: Settings, trust: OutboundTrust = OutboundTrust()) -> ClientConfig:
    return ClientConfig(helo_name=settings.smtp_hostname,
                        port=settings.federation.remote_smtp_port,
                        ca_file=trust.ca_file,
                        source_address=_specific_ip(settings.listen.bind))


def tls_policies(school: School, trust: OutboundTrust) -> TlsPolicies:
    f = school.settings.federation
    sts = None
    if trust.mta_sts:
        fetcher = PolicyFetcher(FetchConfig(ca_file=trust.ca_file, port=trust.mta_sts_port),
                                school.resolver.addresses)
        sts = MtaSts(school.resolver, fetcher, DatabasePolicyCache(school.db))
    dane = DaneLookup(f.dns_nameservers, f.dns_port) if trust.dane else None
    return TlsPolicies(sts, dane)


class OutboundService:
    """Runs the school's OutboundWorker (the conf.app Service protocol)."""

    def __init__(self, school: School, trust: OutboundTrust = OutboundTrust()) -> None:
        self._school = school
        self._trust = trust
        self.worker: OutboundWorker | None = None
        self.client: OutboundClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def _find_account(self, address: str) -> int | None:
        local, _, domain = address.rpartition("@")
        if not local or domain.lower() not in self._school.settings.local_domains:
            return None
        resolved = await self._school.directory.resolve(local)
        if resolved is None or resolved.account is None:
            return None  # a group address: no INBOX of its own
        return resolved.account.id

    async def _signer(self) -> MessageSigner | None:
        settings = self._school.settings
        paths = SchoolKeyPaths.in_dir(settings.base_dir / KEYS_DIR)
        try:
            keys = await asyncio.to_thread(load_dkim_keys, paths)
        except (OSError, ValueError) as exc:
            log.warning("event=dkim_keys_missing reason=%r: outgoing mail is not signed",
                        type(exc).__name__)
            return None
        signer = MessageSigner(keys, settings.local_domains, settings.school.domain)
        await asyncio.to_thread(signer.load_keys)
        return signer

    async def start(self) -> list[str]:
        settings = self._school.settings
        self.client = OutboundClient(client_config(settings, self._trust))
        store = self._school.mail_store
        self.worker = OutboundWorker(
            worker_config(settings), OutboundQueue(self._school.db), self.client,
            self._school.resolver, await self._signer(),
            InboxBounces(store, self._find_account),
            tls=tls_policies(self._school, self._trust))
        deliveries = self._school.metrics.outbound_deliveries
        self.worker.on_result = lambda result, n: deliveries.labels(result).inc(n)
        self._task = asyncio.create_task(self.worker.run(), name="outbound-worker")
        f = settings.federation
        dns = ",".join(f.dns_nameservers) or "system"
        return [f"service=outbound-queue remote_port={f.remote_smtp_port} "
                f"dns={dns}:{f.dns_port}"]

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self._task is not None:
            # The stopped worker's loop ends by itself; cancelling it in the middle
            # of a queue query would strand a database connection.
            await asyncio.wait({self._task}, timeout=STOP_GRACE_SECONDS)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("event=outbound_worker_failed")
            self._task = None


STOP_GRACE_SECONDS = 5.0


def build(school: School) -> list[Service]:
    if not school.singletons:
        return []  # one process of the school works the queue (serve's first worker)
    f = school.settings.federation
    trust = OutboundTrust(ca_file=str(school.settings.path(f.tls_ca_file)) if f.tls_ca_file
                          else None, mta_sts=f.mta_sts, dane=f.dane)
    return [OutboundService(school, trust)]

"""Prometheus metrics and health endpoints of one school (prometheus-client).

One ``SchoolMetrics`` per school with its own ``CollectorRegistry`` (two
schools in one process keep apart; nothing goes to the library's global
registry).  The packages get small callables or counters from it through
the composition root; what is cheaper to read than to count (queue length
and age, database latency) is measured when Prometheus scrapes.

``MetricsServer`` serves, on its own port (loopback by default):
``/metrics`` (the text exposition format), ``/healthz`` (the process answers) and
``/readyz`` (the database answers and every service started: 503 otherwise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("schulhof.metrics")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SYNC_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SchoolMetrics:
    """The metrics of one school; names follow the Prometheus naming guide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.smtp_messages = Counter(
            "schulhof_smtp_messages", "Messages at the end of DATA/BDAT by listener and "
            "result (accepted, refused) with the reply's enhanced status code",
            ["listener", "result", "code"], registry=r)
        self.smtp_recipients_refused = Counter(
            "schulhof_smtp_recipients_refused", "RCPT TO refused, by listener and status code",
            ["listener", "code"], registry=r)
        self.imap_connections = Gauge("schulhof_imap_connections",
                                      "Open IMAP connections", registry=r)
        self.imap_commands = Counter("schulhof_imap_commands", "IMAP commands received, by "
                                     "command (UID FETCH apart from FETCH; 'other' for "
                                     "what is no IMAP command)", ["command"], registry=r)
        self.login_failures = Counter("schulhof_login_failures",
                                      "Failed or throttled logins (all protocols)", ["reason"],
                                      registry=r)
        self.sync_seconds = Histogram("schulhof_matrix_sync_duration_seconds",
                                      "Matrix /sync response time (long-polls included)",
                                      buckets=_SYNC_BUCKETS, registry=r)
        self.matrix_in_progress = Gauge("schulhof_matrix_requests_in_progress",
                                        "Matrix client API requests being answered (a "
                                        "client waiting in a /sync long-poll counts: the "
                                        "connected apps)", registry=r)
        self.outbound_deliveries = Counter(
            "schulhof_outbound_deliveries", "Delivery attempts to other servers per "
            "recipient by result (sent, deferred, bounced)", ["result"], registry=r)
        self.matrix_requests = Counter("schulhof_matrix_requests",
                                       "Matrix client API requests by status class",
                                       ["status"], registry=r)
        self.outbound_messages = Gauge("schulhof_outbound_messages",
                                       "Outbound queue rows by state (queued, delivering, "
                                       "sent, bounced)", ["state"], registry=r)
        self.outbound_oldest_seconds = Gauge("schulhof_outbound_oldest_queued_age_seconds",
                                             "Age of the oldest message still queued",
                                             registry=r)
        self.db_seconds = Histogram("schulhof_database_query_duration_seconds",
                                    "Round trip of a trivial query, measured at each scrape",
                                    buckets=_LATENCY_BUCKETS, registry=r)
        self.sieve_seconds = Histogram("schulhof_sieve_evaluation_seconds",
                                       "Sieve scripts run at delivery and how long each took",
                                       buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005,
                                                0.01, 0.05), registry=r)

    def smtp_reply(self, listener: str, stage: str, reply: str) -> None:
        """Count an SMTP reply to RCPT or to the end of the message data."""
        code = _enhanced(reply)
        if stage == "rcpt":
            if not reply.startswith("2"):
                self.smtp_recipients_refused.labels(listener, code).inc()
            return
        result = "accepted" if reply.startswith("2") else "refused"
        self.smtp_messages.labels(listener, result, code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _enhanced(reply: str) -> str:
    """``550 5.7.1 text`` -> ``5.7.1``; the basic code when there is none."""
    parts = reply.split(" ", 2)
    if len(parts) > 1 and parts[1][:1] in "245" and parts[1].count(".") == 2:
        return parts[1]
    return parts[0][:3]


class MetricsServer:
    """The ``conf.app.Service`` serving /metrics, /healthz and /readyz."""

    def __init__(self, metrics: SchoolMetrics, bind: str, port: int, *,
                 refresh: Callable[[], Awaitable[None]],
                 ready: Callable[[], Awaitable[str | None]]) -> None:
        self.metrics = metrics
        self.bind = bind
        self.port = port
        self._refresh = refresh
        self._ready = ready
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/metrics", self._metrics), web.get("/healthz", self._healthz),
                        web.get("/readyz", self._readyz)])
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            await self._refresh()
        except Exception:  # a scrape still shows the counters
            log.exception("event=metrics_refresh_failed")
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        log.debug("event=metrics_scraped seconds=%.3f", time.perf_counter() - started)
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        try:
            problem = await self._ready()
        except Exception as error:
            problem = f"{type(error).__name__}"
        if problem:
            return web.Response(status=503, text=f"not ready: {problem}\n")
        return web.Response(text="ready\n")

    async def start(self) -> list[str]:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self.bind, self.port).start()
        self._runner = runner
        self.port = runner.addresses[0][1] if runner.addresses else self.port
        return [f"service=metrics addr={self.bind}:{self.port} scheme=http"]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

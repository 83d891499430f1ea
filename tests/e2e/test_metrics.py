"""Metrics and health: scraped over HTTP and read back with prometheus_client's
own text-format parser, before and after real SMTP, IMAP and Matrix traffic."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import ssl

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from conf.app import School
from directory.model import Role

PASSWORD = "ein-sicheres-passwort"


def _tls(school: School) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(school.settings.path(school.settings.tls.certificate)))
    context.check_hostname = False
    return context


async def _scrape(school: School) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    metrics = school.settings.metrics
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://{metrics.bind}:{metrics.port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _mail_traffic(school: School) -> None:
    context = _tls(school)
    listen = school.settings.listen
    with smtplib.SMTP("127.0.0.1", listen.submission, timeout=20) as smtp:
        smtp.starttls(context=context)
        smtp.login("lehrer", PASSWORD)
        smtp.sendmail("lehrer@schule.test", ["anna@schule.test"],
                      b"From: lehrer@schule.test\r\nTo: anna@schule.test\r\n"
                      b"Subject: Messung\r\n\r\nHallo\r\n")
        code, _ = smtp.docmd("MAIL FROM:<lehrer@schule.test>")
        assert code == 250
        code, _ = smtp.docmd("RCPT TO:<niemand@schule.test>")
        assert code == 550
    with imaplib.IMAP4_SSL("127.0.0.1", listen.imaps, ssl_context=context, timeout=20) as imap:
        try:
            imap.login("anna", "falsch")
        except imaplib.IMAP4.error:
            pass
        imap.login("anna", PASSWORD)
        imap.select("INBOX")
        imap.noop()


async def _matrix_sync(school: School) -> None:
    base = f"http://127.0.0.1:{school.settings.listen.matrix}/_matrix/client/v3"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/login", json={
                "type": "m.login.password", "password": PASSWORD,
                "identifier": {"type": "m.id.user", "user": "anna"}}) as response:
            token = (await response.json())["access_token"]
        async with http.get(f"{base}/sync?timeout=0",
                            headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200


async def test_metrics_change_after_traffic_and_health_endpoints(
        running_school: School) -> None:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    before = await _scrape(running_school)
    await asyncio.to_thread(_mail_traffic, running_school)
    await _matrix_sync(running_school)
    after = await _scrape(running_school)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("schulhof_smtp_messages_total", listener="submission", result="accepted",
                 code="2.0.0") == 1
    assert delta("schulhof_smtp_recipients_refused_total", listener="submission",
                 code="5.1.1") == 1
    assert delta("schulhof_login_failures_total", reason="invalid") == 1
    assert delta("schulhof_imap_commands_total", command="LOGIN") == 2
    assert delta("schulhof_imap_commands_total", command="SELECT") == 1
    assert delta("schulhof_imap_commands_total", command="NOOP") == 1
    assert delta("schulhof_imap_commands_total", command="LOGOUT") == 1
    assert after[("schulhof_imap_connections", ())] == 0  # closed again
    # The scrape itself is no Matrix request; the login and /sync are over.
    assert after[("schulhof_matrix_requests_in_progress", ())] == 0
    assert delta("schulhof_matrix_requests_total", status="2xx") == 2
    assert delta("schulhof_matrix_sync_duration_seconds_count") == 1
    assert delta("schulhof_database_query_duration_seconds_count") == 1
    assert ("schulhof_outbound_messages", (("state", "queued"),)) in after
    assert ("schulhof_outbound_oldest_queued_age_seconds", ()) in after

    metrics = running_school.settings.metrics
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/readyz"):
            async with http.get(f"http://{metrics.bind}:{metrics.port}{path}") as response:
                assert response.status == 200, path
        running_school.started = False  # as while the services start
        async with http.get(f"http://{metrics.bind}:{metrics.port}/readyz") as response:
            assert response.status == 503
        running_school.started = True

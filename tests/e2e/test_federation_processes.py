"""Two schools as two real server processes, talking mail to each other over the wire.

School A (a.test) serves on 127.0.0.2, school B (b.test) on 127.0.0.3: each is
``python -m conf.cli --config FILE serve`` in its own process, with its own
database (the ``fresh_database_url`` backend: SQLite or PostgreSQL), its own
TLS certificate (signed by a CA made here, which both schools trust for
outbound TLS through ``federation.tls_ca_file``) and its own DKIM keys.  A DNS
server on loopback, started by the test, publishes what
:func:`federation.dns_records.school_records` says each school needs (MX, A,
SPF, DKIM, DMARC, MTA-STS, ...), for the schools' loopback addresses.  Both
MX listeners use one port number, which is each school's ``remote_smtp_port``.

Everything below the set-up goes over the wire: submission (STARTTLS + AUTH)
with aiosmtplib, reading with imaplib over IMAPS, a forged message straight to
B's MX, and the queue seen through ``schulhof queue list``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.message
import email.policy
import imaplib
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from conf.commands.school import KEYS_DIR
from conf.settings import FederationSettings, Settings, SmtpSettings, render_settings_toml
from federation.dns_records import SchoolDns, school_records
from federation.keys import SchoolKeyPaths, load_dkim_keys
from tests.e2e.test_federation_mail import common_free_port
from tests.mailserver.outbound.pki import TestCa
from tests.support.dns_server import DnsServer
from tests.support.mail_assertions import (
    assert_authentication_passed,
    assert_delivered,
    assert_failure_dsn,
    assert_forgery_refused_by_dmarc,
    assert_received_with_esmtps,
)
from tests.support.schools import make_settings
from tests.support.smtp_clients import make_message

pytestmark = pytest.mark.timeout(240)  # one set-up, two stories

REPO = Path(__file__).resolve().parents[2]
A_IP, B_IP = "127.0.0.2", "127.0.0.3"
FORGER_IP = "127.0.0.9"
PASSWORDS = {"paul": "Paul-Schueler-1", "anna": "Anna-Lehrerin-1"}
STARTUP_SECONDS = 40.0


def _env() -> dict[str, str]:
    # The test runner's SCHULHOF_* variables (the test database URL) are not the school's.
    return {k: v for k, v in os.environ.items() if not k.startswith("SCHULHOF_")}


def schulhof(config: Path, *args: str, stdin: str = "") -> str:
    """Run one ``schulhof`` command against a school; its standard output."""
    done = subprocess.run([sys.executable, "-m", "conf.cli", "--config", str(config), *args],
                          cwd=REPO, env=_env(), input=stdin, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"schulhof {' '.join(args)}: {done.stderr}"
    return done.stdout


def publish(dns_server: DnsServer, settings: Settings, ip: str) -> None:
    """The school's records as ``schulhof dns-records`` makes them, for a loopback address.

    ``dns-records`` leaves out non-public addresses (a loopback bind says nothing
    about what the world should use), so the records are built from the same
    function with the address given explicitly.
    """
    keys = load_dkim_keys(SchoolKeyPaths.in_dir(settings.base_dir / KEYS_DIR))
    info = SchoolDns(domain=settings.school.domain, mail_host=settings.smtp_hostname,
                     dkim_keys=keys, addresses=[ip])
    for record in school_records(info):
        if record.rdtype == "TXT":
            # Zone-file quoted strings back to the bytes they stand for.
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, record.value)
            dns_server.add(record.name, "TXT", b"".join(rdata.strings))
        else:
            dns_server.add(record.name, record.rdtype, record.value)


@dataclass
class SchoolProcess:
    """One school: its settings file, CA trust and (while running) its server process."""

    name: str
    ip: str
    settings: Settings
    config: Path
    ca_file: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def domain(self) -> str:
        return self.settings.school.domain

    def _ready_count(self) -> int:
        return self.log.read_text(errors="replace").count("event=ready") \
            if self.log.exists() else 0

    async def start(self) -> None:
        before = self._ready_count()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conf.cli", "--config", str(self.config), "serve"],
            cwd=REPO, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"))
        deadline = asyncio.get_running_loop().time() + STARTUP_SECONDS
        while self._ready_count() == before:
            if self.proc.poll() is not None:
                raise AssertionError(f"school {self.name} exited: "
                                     f"{self.log.read_text(errors='replace')[-3000:]}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"school {self.name} not ready in time")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """SIGTERM, as an init system stops the server, and wait for it to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait, 10)
            raise AssertionError(f"school {self.name} ignored SIGTERM") from None
        assert self.proc.returncode == 0, self.log.read_text(errors="replace")[-3000:]

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    async def submit(self, login: str, to: list[str], message: bytes) -> None:
        """Submission with STARTTLS and AUTH (RFC 6409, RFC 3207, RFC 4954)."""
        smtp = aiosmtplib.SMTP(hostname=self.ip, port=self.settings.listen.submission,
                               start_tls=True, tls_context=self.tls(),
                               local_hostname="client.test", timeout=15)
        await smtp.connect()
        try:
            await smtp.login(login, PASSWORDS[login])
            await smtp.sendmail(f"{login}@{self.domain}", to, message)
        finally:
            await smtp.quit()

    def _fetch_inbox(self, login: str) -> list[email.message.Message]:
        with imaplib.IMAP4_SSL(self.ip, self.settings.listen.imaps,
                               ssl_context=self.tls(), timeout=15) as imap:
            imap.login(login, PASSWORDS[login])
            imap.select("INBOX", readonly=True)
            _, data = imap.uid("SEARCH", "ALL")
            messages = []
            for uid in data[0].split():
                _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
                bodies = [p[1] for p in parts if isinstance(p, tuple)]
                assert len(bodies) == 1, parts
                messages.append(email.message_from_bytes(bodies[0],
                                                         policy=email.policy.compat32))
            imap.logout()
        return messages

    async def inbox(self, login: str) -> list[email.message.Message]:
        """The account's INBOX, read over IMAPS (RFC 9051) as a mail client does."""
        return await asyncio.to_thread(self._fetch_inbox, login)

    def queue(self) -> list[dict[str, str]]:
        """``schulhof queue list`` rows (waiting and in flight) as dicts."""
        lines = schulhof(self.config, "queue", "list").splitlines()
        header = lines[0].split()
        rows = []
        for line in lines[1:]:
            cells = line.split(None, len(header) - 1)
            rows.append(dict(zip(header, cells, strict=False)))
        return rows


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached in {timeout} s")
        await asyncio.sleep(0.2)


@dataclass
class Federation:
    a: SchoolProcess
    b: SchoolProcess
    dns: DnsServer


@pytest.fixture
async def federation(tmp_path: Path, fresh_database_url: Callable[[], str]
                     ) -> AsyncIterator[Federation]:
    dns_server = DnsServer()
    await dns_server.start()
    ca = TestCa(tmp_path / "ca")
    mx_port = common_free_port(A_IP, B_IP)
    schools: list[SchoolProcess] = []
    accounts: list[tuple[Path, str, str, str]] = []
    try:
        for name, ip, partners, login, role in (
                ("a", A_IP, ("b.test", "c.test"), "paul", "pupil"),
                ("b", B_IP, ("a.test",), "anna", "teacher")):
            domain = f"{name}.test"
            fed = FederationSettings(dns_nameservers=(dns_server.host,), dns_port=dns_server.port,
                                     remote_smtp_port=mx_port, first_retry_seconds=1.0,
                                     tls_ca_file=str(ca.path))
            # The factory runs its own event loop on PostgreSQL: not in this one.
            url = await asyncio.to_thread(fresh_database_url)
            settings = make_settings(tmp_path / name, url, domain=domain, bind=ip,
                                     partners=partners, federation=fed,
                                     smtp=SmtpSettings(idle_timeout_seconds=30.0))
            settings = dataclasses.replace(
                settings, listen=dataclasses.replace(settings.listen, smtp=mx_port))
            # make_settings made a self-signed certificate; the school's own, signed by
            # the CA both schools trust, replaces it.
            issued = ca.issue([settings.smtp_hostname, domain, "localhost"], ips=(ip,))
            settings.path(settings.tls.certificate).write_bytes(issued.chain_file.read_bytes())
            settings.path(settings.tls.key).write_bytes(issued.key_file.read_bytes())
            config = settings.base_dir / "schulhof.toml"
            config.write_text(render_settings_toml(settings), encoding="utf-8")
            publish(dns_server, settings, ip)
            schools.append(SchoolProcess(name, ip, settings, config, ca.path,
                                         tmp_path / f"{name}.log"))
            accounts.append((config, login, role, domain))

        async def add_user(config: Path, login: str, role: str, domain: str) -> None:
            out = await asyncio.to_thread(schulhof, config, "user", "add", login,
                                          "--role", role, "--password-stdin",
                                          stdin=PASSWORDS[login] + "\n")
            assert f"<{login}@{domain}>" in out

        await asyncio.gather(*(add_user(*account) for account in accounts))
        a, b = schools
        await asyncio.gather(a.start(), b.start())
        yield Federation(a, b, dns_server)
    finally:
        await asyncio.gather(*(school.stop() for school in schools))
        await dns_server.stop()


async def test_two_school_processes(federation: Federation) -> None:
    """One set-up of the two processes (the costly part) for both stories, in order:
    the second stops and restarts B, so it comes last."""
    await pupil_and_teacher_at_two_school_processes(federation)
    await partner_down_queues_then_delivers_and_unknown_recipient_bounces(federation)


async def pupil_and_teacher_at_two_school_processes(federation: Federation) -> None:
    a, b = federation.a, federation.b

    # A pupil at A writes to a teacher at B (a partner school).
    marker, message = make_message(sender="paul@a.test", to=["anna@b.test"],
                                   subject="Frage zur Hausaufgabe")
    await a.submit("paul", ["anna@b.test"], message)
    [received] = await eventually(lambda: b.inbox("anna"))
    assert_delivered(received, marker=marker, signed_by="a.test")
    assert_authentication_passed(received, authserv_id="mail.b.test")
    assert_received_with_esmtps(received)
    # A verified B's certificate (the test CA, federation.tls_ca_file) on the first try.
    # The worker logs the remote 250 after B has stored the message: wait for the line.
    async def sent_lines() -> list[str]:
        return [line for line in a.log.read_text().splitlines()
                if "event=outbound_sent" in line]
    sent = await eventually(sent_lines)
    assert len(sent) == 1 and "host=mail.b.test" in sent[0] and "verified=true" in sent[0]
    assert "event=tls_unverified" not in a.log.read_text()

    # The teacher answers; the reply reaches the pupil's INBOX at A.
    reply_marker, reply = make_message(sender="anna@b.test", to=["paul@a.test"],
                                       subject="Re: Frage zur Hausaufgabe")
    await b.submit("anna", ["paul@a.test"], reply)
    [answer] = await eventually(lambda: a.inbox("paul"))
    assert_delivered(answer, marker=reply_marker, signed_by="b.test")
    assert_authentication_passed(answer, methods=("dmarc",))

    # A forgery of A's domain, unsigned, straight to B's MX from an address A's
    # SPF does not list: DMARC p=reject (RFC 7489 6.6.2).
    refused = await assert_forgery_refused_by_dmarc(
        B_IP, b.settings.listen.smtp, source_ip=FORGER_IP, sender="paul@a.test",
        recipient="anna@b.test", timeout=15)
    assert refused.message.startswith("5.7.1")
    assert [m["X-Test-Id"] for m in await b.inbox("anna")] == [marker]

    # Submission at A checks the pupil's recipients against A's partner list.
    await check_partner_list_at_submission(a)


async def check_partner_list_at_submission(a: SchoolProcess) -> None:
    """A pupil may write to partner schools only (directory.policy, settings.partners)."""
    smtp = aiosmtplib.SMTP(hostname=A_IP, port=a.settings.listen.submission, start_tls=True,
                           tls_context=a.tls(), local_hostname="client.test", timeout=15)
    await smtp.connect()
    try:
        await smtp.login("paul", PASSWORDS["paul"])
        await smtp.mail("paul@a.test")
        # c.test is a partner school of A (settings.partners): accepted.
        code, _ = await smtp.rcpt("lehrer@c.test")
        assert code == 250
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await smtp.rcpt("someone@elsewhere.test")
        assert refused.value.code == 550
        assert "partner schools" in refused.value.message
        assert "elsewhere.test" in refused.value.message
        await smtp.rset()  # nothing is sent: no queue row to c.test
    finally:
        await smtp.quit()
    assert await asyncio.to_thread(a.queue) == []


async def partner_down_queues_then_delivers_and_unknown_recipient_bounces(
        federation: Federation) -> None:
    a, b = federation.a, federation.b
    paul_before = await a.inbox("paul")  # the reply of the first story
    await b.stop()
    marker, message = make_message(sender="paul@a.test", to=["anna@b.test"],
                                   subject="Waehrend B schlaeft")
    await a.submit("paul", ["anna@b.test"], message)

    async def deferred() -> list[dict[str, str]]:
        rows = await asyncio.to_thread(a.queue)
        return [r for r in rows if r["TO"] == "anna@b.test" and r["STATE"] == "queued"
                and int(r["ATTEMPTS"]) >= 1 and r.get("LAST_ERROR", "").startswith("451 4.4.1")]

    await eventually(deferred)

    await b.start()

    async def arrived() -> list[email.message.Message]:
        return [m for m in await b.inbox("anna") if m["X-Test-Id"] == marker]

    [received] = await eventually(arrived, timeout=40)
    assert received["X-Test-Id"] == marker
    assert await eventually(lambda: _empty_queue(a)) is True
    # No bounce, no delay warning: the same messages as before.
    assert [m["X-Test-Id"] for m in await a.inbox("paul")] == [
        m["X-Test-Id"] for m in paul_before]

    # An address B does not know: B's MX refuses it, A bounces into the sender's INBOX.
    _, unknown = make_message(sender="paul@a.test", to=["nobody@b.test"],
                              subject="An niemanden")
    await a.submit("paul", ["nobody@b.test"], unknown)

    async def bounced() -> list[email.message.Message]:
        return (await a.inbox("paul"))[len(paul_before):]

    [dsn] = await eventually(bounced)
    assert_failure_dsn(dsn, recipient="nobody@b.test", remote_mta="mail.b.test",
                       original_subject="An niemanden")


async def _empty_queue(school: SchoolProcess) -> bool:
    return await asyncio.to_thread(school.queue) == []

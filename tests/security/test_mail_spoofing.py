"""Issue 19.1 and 19.2: relay and spoofing tricks against a running school, as data.

Each row of ``TRICKS`` is one attempt: which listener, who is logged in (if
anyone), the envelope, the header fields, and the reply code expected at the
step where the server must stop it (or 250 at the end of DATA when the mail is
legitimate).  A new trick is one more line.  The school's DNS is unreachable
(every DMARC lookup is a temperror), the situation of issue 19.1.

Placeholders: {d} is the school's domain, {teacher}/{pupil}/{pupil2}/{parent}
the addresses of the accounts in tests.security.conftest.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.rcode
import pytest

from conf.settings import FederationSettings, Settings
from tests.security.conftest import ServedSchool
from tests.support.schools import make_settings


@dataclass(frozen=True)
class Trick:
    name: str
    listener: str                   # "mx" or "submission"
    mail_from: str
    rcpt: str
    headers: tuple[str, ...] = ()   # "Name: value" lines; From: first if any
    login: str | None = None        # submission: the account that logs in
    expect: int = 550               # the reply code where the server must stop it
    stage: str = "data"             # "mail", "rcpt" or "data": where that reply comes
    extra: dict[str, str] = field(default_factory=dict)


TRICKS = [
    # --- the MX: outsiders in the school's name (19.1) ------------------------------------
    Trick("mx-from-teacher", "mx", "spam@outside.example", "{pupil}", ("From: {teacher}",)),
    Trick("mx-from-teacher-named", "mx", "spam@outside.example", "{pupil}",
          ("From: Frau Lehrerin <{teacher}>",)),
    Trick("mx-from-teacher-upper", "mx", "spam@outside.example", "{pupil}",
          ("From: <{teacher_upper}>",)),
    Trick("mx-from-two-addresses", "mx", "spam@outside.example", "{pupil}",
          ("From: {teacher}, spam@outside.example",)),
    Trick("mx-two-from-fields", "mx", "spam@outside.example", "{pupil}",
          ("From: spam@outside.example", "From: {teacher}")),
    Trick("mx-from-group-syntax", "mx", "spam@outside.example", "{pupil}",
          ("From: Kollegium: {teacher};",)),
    Trick("mx-null-sender-from-teacher", "mx", "", "{pupil}", ("From: {teacher}",)),
    Trick("mx-fake-dkim-signature", "mx", "spam@outside.example", "{pupil}",
          ("DKIM-Signature: v=1; a=rsa-sha256; d={d}; s=rsa-00000000; h=from; bh=AAAA; b=AAAA",
           "From: {teacher}")),
    Trick("mx-forged-auth-results", "mx", "spam@outside.example", "{pupil}",
          ("Authentication-Results: {hostname}; dmarc=pass header.from={d}",
           "From: {teacher}")),
    Trick("mx-envelope-from-teacher", "mx", "{teacher}", "{pupil}", stage="mail"),
    # --- the MX: relaying and envelope tricks ------------------------------------------------
    Trick("mx-relay", "mx", "spam@outside.example", "victim@elsewhere.example",
          expect=554, stage="rcpt"),
    Trick("mx-percent-hack", "mx", "spam@outside.example", "victim%elsewhere.example@{d}",
          stage="rcpt"),
    Trick("mx-address-literal", "mx", "spam@outside.example", "{pupil_local}@[127.0.0.1]",
          stage="rcpt"),
    Trick("mx-source-route", "mx", "spam@outside.example", "@{d}:victim@elsewhere.example",
          expect=553, stage="rcpt"),
    # --- the MX: legitimate outside mail, DMARC temperror: accepted, not trusted --------------
    Trick("mx-outsider-temperror", "mx", "paula@partner.example", "{pupil}",
          ("From: Paula <paula@partner.example>",), expect=250),
    Trick("mx-outsider-display-name", "mx", "paula@partner.example", "{pupil}",
          ("From: \"{teacher}\" <paula@partner.example>",), expect=250),
    # --- submission: a pupil in a teacher's name (19.2) ---------------------------------------
    Trick("sub-from-teacher", "submission", "{pupil}", "{pupil2}", ("From: {teacher}",),
          login="schueler"),
    Trick("sub-sender-teacher", "submission", "{pupil}", "{pupil2}",
          ("From: {pupil}", "Sender: {teacher}"), login="schueler"),
    Trick("sub-resent-from-teacher", "submission", "{pupil}", "{pupil2}",
          ("From: {pupil}", "Resent-From: {teacher}"), login="schueler"),
    Trick("sub-resent-sender-teacher", "submission", "{pupil}", "{pupil2}",
          ("From: {pupil}", "Resent-Sender: Lehrerin <{teacher}>"), login="schueler"),
    Trick("sub-display-name-teacher", "submission", "{pupil}", "{pupil2}",
          ("From: \"{teacher}\" <{pupil}>",), login="schueler"),
    Trick("sub-encoded-display-name", "submission", "{pupil}", "{pupil2}",
          ("From: {teacher_encoded} <{pupil}>",), login="schueler"),
    Trick("sub-fullwidth-at-display-name", "submission", "{pupil}", "{pupil2}",
          ("From: \"{teacher_fullwidth}\" <{pupil}>",), login="schueler"),
    Trick("sub-comment-teacher", "submission", "{pupil}", "{pupil2}",
          ("From: {pupil} ({teacher})",), login="schueler"),
    Trick("sub-obsolete-colon-sender", "submission", "{pupil}", "{pupil2}",
          ("From: {pupil}", "Sender : {teacher}"), login="schueler"),
    Trick("sub-envelope-teacher", "submission", "{teacher}", "{pupil2}", ("From: {pupil}",),
          login="schueler", stage="mail"),
    Trick("sub-no-from", "submission", "{pupil}", "{pupil2}", ("Subject: ohne From",),
          login="schueler"),
    # --- submission: what stays allowed ------------------------------------------------------
    Trick("sub-own-display-name", "submission", "{pupil}", "{pupil2}",
          ("From: \"Paul ({pupil})\" <{pupil}>", "Sender: {pupil}"), login="schueler",
          expect=250),
    Trick("sub-teacher-plain", "submission", "{teacher}", "{pupil}",
          ("From: Frau Lehrerin <{teacher}>", "Resent-From: {teacher}"), login="lehrerin",
          expect=250),
]


def _fill(text: str, served: ServedSchool) -> str:
    teacher = served.address("lehrerin")
    local, _, domain = teacher.partition("@")
    return text.format(
        d=served.domain, teacher=teacher, pupil=served.address("schueler"),
        pupil2=served.address("schuelerin"), parent=served.address("mutter"),
        teacher_upper=teacher.upper(), pupil_local="schueler",
        teacher_encoded=f"=?utf-8?b?{base64.b64encode(teacher.encode()).decode()}?=",
        teacher_fullwidth=f"{local}\uff20{domain}", hostname=served.settings.smtp_hostname)


def _attempt(served: ServedSchool, trick: Trick) -> tuple[str, int, str]:
    """(stage, code, text) of the first refusal, or ("data", 250, ...) when accepted."""
    listen = served.settings.listen
    cafile = str(served.settings.path(served.settings.tls.certificate))
    port = listen.smtp if trick.listener == "mx" else listen.submission
    with smtplib.SMTP(served.host, port, local_hostname="client.example", timeout=20) as smtp:
        smtp.ehlo()
        smtp.starttls(context=ssl.create_default_context(cafile=cafile))
        smtp.ehlo()
        if trick.login:
            smtp.login(served.address(trick.login), served.password(trick.login))
        code, text = smtp.mail(_fill(trick.mail_from, served))
        if code >= 400:
            return "mail", code, text.decode()
        code, text = smtp.rcpt(_fill(trick.rcpt, served))
        if code >= 400:
            return "rcpt", code, text.decode()
        lines = [_fill(h, served) for h in trick.headers]
        lines += [f"To: {_fill(trick.rcpt, served)}", f"Subject: {trick.name}",
                  f"Message-ID: <{trick.name}@client.example>", "", f"Trick {trick.name}", ""]
        code, text = smtp.data("\r\n".join(lines).encode())
        return "data", code, text.decode()


def _failing_dns() -> tuple[str, int]:
    """A DNS server on loopback that answers SERVFAIL to everything (a broken resolver:
    every SPF/DKIM/DMARC lookup is a temperror, at once rather than after a timeout)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            data, peer = sock.recvfrom(4096)
            try:
                response = dns.message.make_response(dns.message.from_wire(data))
            except dns.exception.DNSException:
                continue
            response.set_rcode(dns.rcode.SERVFAIL)
            sock.sendto(response.to_wire(), peer)

    threading.Thread(target=serve, name="servfail-dns", daemon=True).start()
    return sock.getsockname()


@pytest.fixture(scope="module")
def served_settings(tmp_path_factory: pytest.TempPathFactory,
                    module_database_url: str) -> Settings:
    """The school with a broken DNS resolver: every DMARC lookup is a temperror."""
    host, port = _failing_dns()
    return make_settings(
        tmp_path_factory.mktemp("served") / "schule", module_database_url,
        federation=FederationSettings(dns_nameservers=(host,), dns_port=port, dns_cache=False))


async def test_relay_and_spoof_matrix(served: ServedSchool) -> None:
    outcomes = {}
    for trick in TRICKS:
        stage, code, text = await asyncio.to_thread(_attempt, served, trick)
        outcomes[trick.name] = (stage, code, text)
    wrong = {name: got for name, got in outcomes.items()
             for trick in TRICKS if trick.name == name
             and (got[1] != trick.expect or (trick.expect >= 400 and got[0] != trick.stage))}
    assert not wrong, "\n".join(f"{n}: {g}" for n, g in wrong.items())
    refused = [outcomes[t.name][2] for t in TRICKS if t.expect == 550 and t.stage == "data"]
    assert all("5.7.1" in text or "5.6.0" in text for text in refused), refused
    assert served.bad_log_lines() == [], served.log()[-3000:]
    # The outsider's mail is in the pupil's INBOX, marked dmarc=temperror; no forgery is.
    cafile = str(served.settings.path(served.settings.tls.certificate))
    imap = imaplib.IMAP4(served.host, served.settings.listen.imap)
    try:
        imap.starttls(ssl.create_default_context(cafile=cafile))
        imap.login(served.address("schueler"), served.password("schueler"))
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER])")
        headers = [part[1].decode() for part in data if isinstance(part, tuple)]
    finally:
        imap.logout()
    subjects = sorted(line.split(": ", 1)[1] for h in headers for line in h.splitlines()
                      if line.startswith("Subject: "))
    expected = sorted(t.name for t in TRICKS if t.expect == 250 and t.rcpt == "{pupil}")
    assert subjects == expected
    for h in headers:
        if "Subject: mx-" in h:
            assert f"Authentication-Results: {served.settings.smtp_hostname};" in h
            assert "dmarc=temperror" in h, h

"""Mail client self-configuration served on the webmail port, fetched over HTTPS
and checked against the running listeners (by logging in where they point)."""

from __future__ import annotations

import asyncio
import imaplib
import json
import plistlib
import shutil
import smtplib
import ssl
import subprocess
from xml.etree import ElementTree as ET

import aiohttp
import pytest

from conf.app import School
from directory.model import Role
from federation.dns_records import mta_sts_policy

PASSWORD = "ein-sicheres-passwort"
OUTLOOK = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


def _tls(school: School) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(school.settings.path(school.settings.tls.certificate)))
    context.check_hostname = False
    return context


async def _get(school: School, path: str, *, data: bytes | None = None
               ) -> tuple[int, str, bytes]:
    url = f"https://127.0.0.1:{school.settings.listen.web}{path}"
    async with aiohttp.ClientSession() as http:
        method = http.post if data is not None else http.get
        async with method(url, data=data, ssl=_tls(school)) as response:
            return response.status, response.content_type, await response.read()


def _logins(school: School, imap: dict[str, int], smtp: dict[str, int], user: str) -> None:
    """Log in where the document points: IMAP over TLS and STARTTLS, SMTP likewise."""
    context = _tls(school)
    with imaplib.IMAP4_SSL("127.0.0.1", imap["SSL"], ssl_context=context, timeout=20) as c:
        assert c.login(user, PASSWORD)[0] == "OK"
    with imaplib.IMAP4("127.0.0.1", imap["STARTTLS"], timeout=20) as c:
        c.starttls(context)
        assert c.login(user, PASSWORD)[0] == "OK"
    with smtplib.SMTP_SSL("127.0.0.1", smtp["SSL"], context=context, timeout=20) as s:
        assert s.login(user, PASSWORD)[0] == 235
    with smtplib.SMTP("127.0.0.1", smtp["STARTTLS"], timeout=20) as s:
        s.starttls(context=context)
        assert s.login(user, PASSWORD)[0] == 235


async def test_thunderbird_autoconfig_names_the_running_listeners(
        running_school: School) -> None:
    await running_school.directory.create_account(role=Role.PUPIL, login="anna",
                                                  password=PASSWORD)
    settings = running_school.settings
    bodies = []
    for path in ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"):
        status, kind, body = await _get(running_school, path)
        assert (status, kind) == (200, "application/xml")
        bodies.append(body)
    assert bodies[0] == bodies[1]
    root = ET.fromstring(bodies[0])
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.findtext("domain") == "schule.test"
    ports: dict[str, dict[str, int]] = {"imap": {}, "smtp": {}}
    for server in [*provider.findall("incomingServer"), *provider.findall("outgoingServer")]:
        assert server.findtext("hostname") == settings.smtp_hostname
        assert server.findtext("username") == "%EMAILLOCALPART%"
        ports[server.get("type", "")][server.findtext("socketType", "")] = int(
            server.findtext("port", "0"))
    listen = settings.listen
    assert ports == {"imap": {"SSL": listen.imaps, "STARTTLS": listen.imap},
                     "smtp": {"SSL": listen.submissions, "STARTTLS": listen.submission}}
    # %EMAILLOCALPART% of anna@schule.test, the way Thunderbird fills it in.
    await asyncio.to_thread(_logins, running_school, ports["imap"], ports["smtp"], "anna")


def _autodiscover_request(address: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
        'requestschema/2006"><Request>'
        f"<EMailAddress>{address}</EMailAddress>"
        "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/"
        "outlook/responseschema/2006a</AcceptableResponseSchema>"
        "</Request></Autodiscover>").encode()


async def test_outlook_autodiscover_does_not_tell_accounts_apart(
        running_school: School) -> None:
    await running_school.directory.create_account(role=Role.PUPIL, login="anna",
                                                  password=PASSWORD)
    _, _, known = await _get(running_school, "/autodiscover/autodiscover.xml",
                             data=_autodiscover_request("anna@schule.test"))
    _, _, unknown = await _get(running_school, "/Autodiscover/Autodiscover.xml",
                               data=_autodiscover_request("niemand@schule.test"))
    assert known.replace(b"anna", b"niemand") == unknown  # same answer, no enumeration
    protocols = {p.findtext(f"{OUTLOOK}Type"): p for p in ET.fromstring(known).iter(
        f"{OUTLOOK}Protocol")}
    listen = running_school.settings.listen
    assert protocols["IMAP"].findtext(f"{OUTLOOK}Port") == str(listen.imaps)
    assert protocols["SMTP"].findtext(f"{OUTLOOK}Port") == str(listen.submissions)
    assert protocols["IMAP"].findtext(f"{OUTLOOK}LoginName") == "anna"
    _, _, foreign = await _get(running_school, "/autodiscover/autodiscover.xml",
                               data=_autodiscover_request("eva@example.org"))
    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>')
    for body in (b"", b"<not xml", bomb, b"x" * 100_000):
        status, _, answer = await _get(running_school, "/autodiscover/autodiscover.xml",
                                       data=body)
        assert status == 200 and answer == foreign
    assert b"<ErrorCode>600</ErrorCode>" in foreign


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_apple_profile_is_signed_and_names_the_listeners(running_school: School) -> None:
    status, kind, body = await _get(running_school,
                                    "/mail/schulhof.mobileconfig?email=anna@schule.test")
    assert (status, kind) == (200, "application/x-apple-aspen-config")
    cert = running_school.settings.path(running_school.settings.tls.certificate)
    verified = subprocess.run(
        ["openssl", "smime", "-verify", "-inform", "DER", "-CAfile", str(cert),
         "-purpose", "any", "-binary"], input=body, capture_output=True, check=False)
    assert verified.returncode == 0, verified.stderr
    profile = plistlib.loads(verified.stdout)
    [mail] = profile["PayloadContent"]
    listen = running_school.settings.listen
    assert mail["IncomingMailServerPortNumber"] == listen.imaps
    assert mail["OutgoingMailServerPortNumber"] == listen.submissions
    assert mail["IncomingMailServerUsername"] == "anna"
    status, _, _ = await _get(running_school, "/mail/schulhof.mobileconfig?email=x@example.org")
    assert status == 400


async def test_mta_sts_and_matrix_well_known(running_school: School) -> None:
    settings = running_school.settings
    status, kind, body = await _get(running_school, "/.well-known/mta-sts.txt")
    assert (status, kind) == (200, "text/plain")
    assert body.decode() == mta_sts_policy(settings.smtp_hostname, "enforce")
    fields = dict(line.split(": ", 1) for line in body.decode().split("\r\n") if line)
    assert fields["mx"] == settings.smtp_hostname and fields["version"] == "STSv1"
    _, _, server = await _get(running_school, "/.well-known/matrix/server")
    host, _, port = json.loads(server)["m.server"].rpartition(":")
    assert (host, int(port)) == ("matrix.schule.test", settings.listen.federation)
    _, _, client = await _get(running_school, "/.well-known/matrix/client")
    assert json.loads(client)["m.homeserver"]["base_url"].startswith("https://")

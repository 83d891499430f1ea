"""`schulhof dns-records`: every record present, and what it says is true.

The printed zone is parsed back with dnspython and served by the loopback DNS
server; mail signed with the school's keys then passes SPF, DKIM and DMARC.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses

import dns.zone
import pytest
from cryptography.hazmat.primitives import serialization

from conf.app import School
from conf.commands import dns as dns_command
from federation.dkim import DkimSigner
from federation.dns_records import mta_sts_policy, txt_value
from federation.keys import SchoolKeyPaths, load_dkim_keys
from federation.mail_auth import authenticate_inbound
from federation.resolver import Resolver
from tests.support.dns_server import DnsServer

PUBLIC_IP = "1.2.3.4"


async def run_command(school: School, capsys: pytest.CaptureFixture[str],
                      *argv: str) -> str:
    parser = argparse.ArgumentParser()
    dns_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dns-records", *argv])
    assert await args.handler(args, school) == 0
    return capsys.readouterr().out


def parse_zone(text: str) -> dns.zone.Zone:
    return dns.zone.from_text(text, origin=".", relativize=False, check_origin=False)


def txt(zone: dns.zone.Zone, name: str) -> list[str]:
    rdataset = zone.get_rdataset(name, "TXT")
    assert rdataset is not None, f"no TXT at {name}"
    return [b"".join(r.strings).decode() for r in rdataset]


def rdata(zone: dns.zone.Zone, name: str, rdtype: str) -> list[str]:
    rdataset = zone.get_rdataset(name, rdtype)
    assert rdataset is not None, f"no {rdtype} at {name}"
    return [r.to_text() for r in rdataset]


async def test_every_record_is_printed(school: School,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = await run_command(school, capsys, "--address", PUBLIC_IP)
    zone = parse_zone(out)
    d = "schule.test."
    assert rdata(zone, d, "MX") == ["10 mail.schule.test."]
    assert rdata(zone, "mail.schule.test.", "A") == [PUBLIC_IP]
    assert txt(zone, d) == [f"v=spf1 mx ip4:{PUBLIC_IP} -all"]
    assert txt(zone, "mail.schule.test.") == ["v=spf1 a -all"]
    assert txt(zone, f"_dmarc.{d}") == ["v=DMARC1; p=reject; rua=mailto:postmaster@schule.test"]
    (sts,) = txt(zone, f"_mta-sts.{d}")
    assert sts.startswith("v=STSv1; id=")
    assert txt(zone, f"_smtp._tls.{d}") == ["v=TLSRPTv1; rua=mailto:postmaster@schule.test"]
    listen = school.settings.listen
    for service, port in [("submission", listen.submission),
                          ("submissions", listen.submissions),
                          ("imap", listen.imap), ("imaps", listen.imaps)]:
        assert rdata(zone, f"_{service}._tcp.{d}", "SRV") == [f"0 1 {port} mail.schule.test."]
    # Federation goes to the Server-Server listener, not the client API port.
    assert listen.federation != listen.matrix
    assert rdata(zone, f"_matrix._tcp.{d}", "SRV") == [
        f"0 1 {listen.federation} matrix.schule.test."]
    assert rdata(zone, f"_matrix-fed._tcp.{d}", "SRV") == [
        f"0 1 {listen.federation} matrix.schule.test."]
    assert rdata(zone, f"autoconfig.{d}", "CNAME") == ["mail.schule.test."]
    # the MTA-STS policy file and the Matrix .well-known documents are shown
    for line in mta_sts_policy("mail.schule.test").split("\r\n"):
        assert f";   {line}" in out
    assert '"m.server": "matrix.schule.test:' in out


async def test_dkim_records_match_private_keys_on_disk(
        school: School, capsys: pytest.CaptureFixture[str]) -> None:
    zone = parse_zone(await run_command(school, capsys))
    paths = SchoolKeyPaths.in_dir(school.settings.base_dir / "keys")
    published = {}
    for name, node in zone.nodes.items():
        if "_domainkey" in name.to_text():
            for rdataset in node.rdatasets:
                for r in rdataset:
                    published[name.to_text()] = b"".join(r.strings).decode()
    assert len(published) == 2
    expected = {}
    rsa_pem, ed_pem = paths.dkim_rsa.read_bytes(), paths.dkim_ed25519.read_bytes()
    rsa_public = serialization.load_pem_private_key(rsa_pem, None).public_key()
    ed_public = serialization.load_pem_private_key(ed_pem, None).public_key()
    expected["rsa"] = rsa_public.public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    expected["ed25519"] = ed_public.public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)
    seen = set()
    for name, value in published.items():
        tags = dict(t.strip().split("=", 1) for t in value.split(";"))
        assert tags["v"] == "DKIM1"
        assert base64.b64decode(tags["p"]) == expected[tags["k"]]
        selector = name.split("._domainkey.")[0]
        assert selector.startswith("rsa-" if tags["k"] == "rsa" else "ed-")
        seen.add(tags["k"])
    assert seen == {"rsa", "ed25519"}
    # the signer picks the same selectors
    assert {f"{k.selector}._domainkey.schule.test." for k in load_dkim_keys(paths)} == set(
        published)


async def test_published_zone_makes_our_mail_pass(
        school: School, capsys: pytest.CaptureFixture[str], dns_server: DnsServer,
        resolver: Resolver) -> None:
    """Serve exactly what was printed; mail from the school then passes everywhere."""
    zone = parse_zone(await run_command(school, capsys, "--address", PUBLIC_IP))
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            dns_server.zone.records[(name, rdataset.rdtype)] = list(rdataset)
    keys = load_dkim_keys(SchoolKeyPaths.in_dir(school.settings.base_dir / "keys"))
    message = (b"From: Anna <anna@schule.test>\r\nTo: ben@partner.test\r\n"
               b"Subject: Hallo\r\n\r\nHallo Ben\r\n")
    signed = await DkimSigner("schule.test", keys).sign(message)
    verdict = await authenticate_inbound(signed, PUBLIC_IP, "anna@schule.test",
                                         "mail.schule.test", resolver, "mx.partner.test")
    assert verdict.spf.result == "pass"
    assert [r.result for r in verdict.dkim] == ["pass", "pass"]
    assert verdict.dmarc.result == "pass" and verdict.dmarc.policy == "reject"
    # and a stranger using the school's address is rejected
    verdict = await authenticate_inbound(message, "5.6.7.8", "anna@schule.test", "x.test",
                                         resolver, "mx.partner.test")
    assert verdict.reject


async def test_private_bind_gets_a_note_and_no_address_records(
        school: School, capsys: pytest.CaptureFixture[str]) -> None:
    out = await run_command(school, capsys)
    assert "; NOTE: bind address 127.0.0.1 is not public" in out
    zone = parse_zone(out)
    assert zone.get_rdataset("mail.schule.test.", "A") is None
    assert txt(zone, "schule.test.") == ["v=spf1 mx -all"]


async def test_extra_domains_and_disabled_services(
        school: School, capsys: pytest.CaptureFixture[str]) -> None:
    school.settings = dataclasses.replace(
        school.settings,
        school=dataclasses.replace(school.settings.school, extra_domains=("alias.test",)),
        listen=dataclasses.replace(school.settings.listen, imap=-1))
    zone = parse_zone(await run_command(school, capsys))
    assert rdata(zone, "alias.test.", "MX") == ["10 mail.schule.test."]
    assert txt(zone, "_dmarc.alias.test.")[0].startswith("v=DMARC1; p=reject")
    assert len([n for n in zone.nodes if n.to_text().endswith("_domainkey.alias.test.")]) == 2
    assert rdata(zone, "_imap._tcp.schule.test.", "SRV") == ["0 0 0 ."]


def test_txt_value_splits_long_strings() -> None:
    long = "v=DKIM1; k=rsa; p=" + "A" * 400
    value = txt_value(long)
    assert value.count('" "') == 1
    chunks = value[1:-1].split('" "')
    assert [len(c) for c in chunks] == [255, len(long) - 255]
    assert "".join(chunks) == long

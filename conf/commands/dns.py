"""``schulhof dns-records``: print the DNS records the school must publish.

Zone-file lines for MX, SPF, DKIM (both keys), DMARC, MTA-STS, TLS-RPT, the
mail client SRV records, autoconfig and Matrix discovery, followed by the
MTA-STS policy file and the Matrix .well-known documents to serve.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from conf.commands.school import KEYS_DIR

if TYPE_CHECKING:
    from conf.app import School


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dns-records", help="print the DNS records the school must publish")
    p.add_argument("--address", action="append", default=[], metavar="IP",
                   help="public address of the server (repeatable; default: the bind "
                        "address when it is public)")
    p.add_argument("--mta-sts-mode", choices=["enforce", "testing", "none"],
                   default=None,
                   help="MTA-STS policy mode (default: the setting smtp.mta_sts_mode)")
    p.set_defaults(handler=handler, migrate=False)


def _port(value: int) -> int:
    return value if value > 0 else 0


async def handler(args: argparse.Namespace, school: School) -> int:
    from federation.dns_records import SchoolDns, public_addresses, render
    from federation.keys import SchoolKeyPaths, load_dkim_keys

    settings = school.settings
    paths = SchoolKeyPaths.in_dir(settings.base_dir / KEYS_DIR)
    keys = await asyncio.to_thread(load_dkim_keys, paths)
    addresses = public_addresses(args.address or [settings.listen.bind])
    notes = []
    if not addresses:
        notes.append(f"bind address {settings.listen.bind} is not public: add A/AAAA "
                     f"records for {settings.smtp_hostname} yourself or pass --address")
    listen = settings.listen
    if listen.smtp != 25:
        notes.append(f"SMTP listens on port {listen.smtp}; other servers deliver to port 25 "
                     "of the MX host (MX records carry no port): forward 25 to it")
    info = SchoolDns(
        domain=settings.school.domain, mail_host=settings.smtp_hostname, dkim_keys=keys,
        extra_domains=settings.school.extra_domains, addresses=addresses,
        submission_port=_port(listen.submission), submissions_port=_port(listen.submissions),
        imap_port=_port(listen.imap), imaps_port=_port(listen.imaps),
        sieve_port=_port(listen.managesieve),
        federation_port=_port(listen.federation),
        mta_sts_mode=args.mta_sts_mode or settings.smtp.mta_sts_mode, notes=notes)
    print(render(info), end="")
    return 0

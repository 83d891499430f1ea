"""The loopback DNS server as a *validating* resolver would answer: AD on chosen names.

tests/support/dns_server.py answers without the AD flag; DANE needs it
(RFC 6698 4.1).  ``secure_dns(server)`` swaps the server's zone for one
that sets AD (RFC 4035 3.2.3) on answers for the names in ``zone.secure``.
The zone object is changed in place (its class), because the running UDP
listener holds on to it: works before and after ``start``.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name

from tests.support.dns_server import DnsServer, Zone


class SecureZone(Zone):
    def __init__(self) -> None:
        super().__init__()
        self.secure: set[dns.name.Name] = set()

    def mark_secure(self, *names: str) -> None:
        for name in names:
            self.secure.add(dns.name.from_text(name if name.endswith(".") else name + "."))

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        response = super().answer(query)
        if response is not None and query.question and query.question[0].name in self.secure:
            response.flags |= dns.flags.AD
        return response


def secure_dns(server: DnsServer) -> SecureZone:
    zone = server.zone
    zone.__class__ = SecureZone
    assert isinstance(zone, SecureZone)
    zone.secure = set()
    return zone

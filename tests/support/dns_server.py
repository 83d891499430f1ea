"""A real authoritative DNS server on loopback for tests (UDP and TCP).

Tests fill an in-memory zone::

    dns_server.add("schule.test", "MX", "10 mail.schule.test.")
    dns_server.add("schule.test", "TXT", "v=spf1 mx -all")   # plain text, split for you

and point a :class:`federation.resolver.Resolver` at ``dns_server.host`` /
``dns_server.port``.  Unknown names get NXDOMAIN, known names without the
asked type an empty NOERROR answer; CNAMEs are followed inside the zone.
Negative answers carry an SOA of the name's two-label parent in the authority
section, as real servers do (RFC 2308), so caching resolvers keep them for
NEGATIVE_TTL.  ``fail(name)`` makes a name answer SERVFAIL and ``drop(name)`` makes the
server ignore queries for it (a timeout for the client).  Messages are built
with dnspython (dns.message.from_wire / make_response), never by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import struct
import threading
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

TTL = 60
NEGATIVE_TTL = 60


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text if text.endswith(".") else text + ".")


def txt_rdata_text(value: str) -> str:
    """Zone-file text of one TXT record, split into 255-byte strings (RFC 1035 3.3.14)."""
    raw = value.encode("utf-8")
    chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    return " ".join('"' + c.decode("utf-8", "surrogateescape").replace("\\", "\\\\")
                    .replace('"', '\\"') + '"' for c in chunks)


def _negative_soa(qname: dns.name.Name) -> dns.rrset.RRset:
    """The SOA a negative answer carries (RFC 2308 3); its minimum is the negative TTL."""
    apex = dns.name.Name(qname.labels[-3:]) if len(qname.labels) > 3 else qname
    rdata = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.SOA,
        f"ns.{apex} hostmaster.{apex} 1 3600 600 86400 {NEGATIVE_TTL}")
    return dns.rrset.from_rdata_list(apex, NEGATIVE_TTL, [rdata])


@dataclass
class Zone:
    records: dict[tuple[dns.name.Name, int], list[dns.rdata.Rdata]] = field(
        default_factory=dict)
    failing: set[dns.name.Name] = field(default_factory=set)
    dropped: set[dns.name.Name] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, rdtype: str, value: str | bytes) -> None:
        """Add one record.  TXT values are plain text (split automatically) or
        bytes; other types take zone-file rdata text ("10 mx.example.")."""
        t = dns.rdatatype.from_text(rdtype)
        if t == dns.rdatatype.TXT:
            if isinstance(value, bytes):
                chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [b""]
                rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, t, chunks)
            else:
                rdata = dns.rdata.from_text(dns.rdataclass.IN, t, txt_rdata_text(value))
        else:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, t, str(value),
                                        origin=dns.name.root, relativize=False)
        self.records.setdefault((_name(name), t), []).append(rdata)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        n = _name(name)
        for key in [k for k in self.records if k[0] == n]:
            if rdtype is None or key[1] == dns.rdatatype.from_text(rdtype):
                del self.records[key]

    def fail(self, name: str) -> None:
        self.failing.add(_name(name))

    def drop(self, name: str) -> None:
        self.dropped.add(_name(name))

    def _exists(self, name: dns.name.Name) -> bool:
        # A name with no records but with names below it exists (empty non-terminal).
        return any(k[0] == name or k[0].is_subdomain(name) for k in self.records)

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response to ``query``, or None to stay silent."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        self.queries.append((qname.to_text(), dns.rdatatype.to_text(qtype)))
        for _ in range(8):  # follow CNAME chains inside the zone
            if qname in self.dropped:
                return None
            if qname in self.failing:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            found = self.records.get((qname, qtype))
            if found:
                response.answer.append(dns.rrset.from_rdata_list(qname, TTL, found))
                return response
            cname = self.records.get((qname, dns.rdatatype.CNAME))
            if cname and qtype != dns.rdatatype.CNAME:
                response.answer.append(dns.rrset.from_rdata_list(qname, TTL, cname))
                qname = cname[0].target
                continue
            if not self._exists(qname):
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(_negative_soa(qname))
            return response
        response.set_rcode(dns.rcode.SERVFAIL)  # CNAME loop
        return response


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return  # garbage: a real server would FORMERR; silence is enough here
        response = self.zone.answer(query)
        if response is None or self.transport is None:
            return
        max_size = max(512, query.payload if query.edns >= 0 else 512)
        wire = response.to_wire()
        self.transport.sendto(wire if len(wire) <= max_size else _truncated(query), addr)


def _truncated(query: dns.message.Message) -> bytes:
    """TC=1 with no records: the client retries over TCP (RFC 7766)."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.TC
    return response.to_wire()


class DnsServer:
    """The server: ``await start()``, then ``host``/``port``; ``await stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port  # 0: a free one; 53 for a resolver that cannot be told a port
        self.zone = Zone()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None

    # Zone shortcuts, so tests read `dns_server.add(...)`.
    def add(self, name: str, rdtype: str, value: str | bytes) -> None:
        self.zone.add(name, rdtype, value)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        self.zone.remove(name, rdtype)

    def fail(self, name: str) -> None:
        self.zone.fail(name)

    def drop(self, name: str) -> None:
        self.zone.drop(name)

    @property
    def queries(self) -> list[tuple[str, str]]:
        return self.zone.queries

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.port:
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port)
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self.zone), local_addr=(self.host, self.port))
            return
        # TCP first on port 0, then UDP on the same number (retry if taken).
        for _ in range(20):
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, 0)
            self.port = self._tcp.sockets[0].getsockname()[1]
            try:
                self._udp, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(self.zone), local_addr=(self.host, self.port))
                return
            except OSError:
                self._tcp.close()
                await self._tcp.wait_closed()
        raise RuntimeError("no free port for the test DNS server")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    query = dns.message.from_wire(data)
                except Exception:
                    return
                response = self.zone.answer(query)
                if response is None:
                    continue
                wire = response.to_wire()
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class SilentServer:
    """A UDP+TCP "nameserver" that never answers: resolvers see a timeout."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(self.host, 0))
        self.port = self._udp.get_extra_info("sockname")[1]

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()


@functools.cache
def quiet_dns() -> tuple[str, int]:
    """An empty-zone DNS server on loopback, in its own thread, one per test process.

    Test schools point their resolver here by default, so SPF/DKIM/DMARC of
    inbound mail get fast NXDOMAIN answers (results "none") instead of asking
    the machine's resolver about test domains.  Tests that need records start
    their own ``DnsServer``.
    """
    started: queue.Queue[tuple[str, int]] = queue.Queue()

    def run() -> None:
        async def serve() -> None:
            server = DnsServer()
            await server.start()
            started.put((server.host, server.port))
            await asyncio.Event().wait()  # serve until the process ends

        asyncio.run(serve())

    threading.Thread(target=run, name="quiet-dns", daemon=True).start()
    return started.get(timeout=10)

"""HTTP client for other servers' federation APIs: finds the server (discovery),
connects with TLS verified against the name the spec says, signs the request
(X-Matrix) and decodes the JSON answer with limits on time and size.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from federation.matrix.discovery import Destination, ServerDiscovery, _ip_literal
from federation.matrix.errors import DestinationRefused, FederationRequestError
from federation.matrix.request_auth import authorization_header
from federation.matrix.signed_json import SigningKey
from federation.resolver import DnsError, Resolver

log = logging.getLogger("schulhof.federation.matrix")

REQUEST_TIMEOUT_SECONDS = 20.0
WELL_KNOWN_TIMEOUT_SECONDS = 5.0
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
MEDIA_TIMEOUT_SECONDS = 120.0
MEDIA_CHUNK = 64 * 1024
MAX_WELL_KNOWN_BYTES = 64 * 1024
WELL_KNOWN_HIT_SECONDS = 24 * 3600.0
WELL_KNOWN_MISS_SECONDS = 3600.0


def verifying_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class FederationClient:
    """Requests from ``origin`` (our server name) to other servers."""

    def __init__(self, origin: str, key: SigningKey, resolver: Resolver, *,
                 ca_file: str | None = None,
                 allowed: Callable[[str], bool] = lambda name: True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.origin = origin
        self._key = key
        self._resolver = resolver
        self._tls = verifying_context(ca_file)
        self._allowed = allowed
        self._clock = clock
        self._well_known: dict[str, tuple[float, str | None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.discovery = ServerDiscovery(resolver, self.fetch_well_known)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._tls, limit_per_host=8)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                                  auto_decompress=True)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch_well_known(self, host: str) -> str | None:
        """``m.server`` from ``https://host/.well-known/matrix/server``, cached."""
        cached = self._well_known.get(host)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        delegated: str | None = None
        try:
            timeout = aiohttp.ClientTimeout(total=WELL_KNOWN_TIMEOUT_SECONDS)
            async with self._http().get(f"https://{host}/.well-known/matrix/server",
                                        timeout=timeout, allow_redirects=True,
                                        max_redirects=5) as response:
                if response.status == 200:
                    raw = await response.content.read(MAX_WELL_KNOWN_BYTES + 1)
                    body = json.loads(raw) if len(raw) <= MAX_WELL_KNOWN_BYTES else None
                    value = body.get("m.server") if isinstance(body, dict) else None
                    delegated = value if isinstance(value, str) and value else None
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, ssl.SSLError):
            delegated = None
        ttl = WELL_KNOWN_HIT_SECONDS if delegated else WELL_KNOWN_MISS_SECONDS
        self._well_known[host] = (self._clock() + ttl, delegated)
        return delegated

    async def _address(self, destination: Destination) -> str:
        ip = _ip_literal(destination.host)
        if ip is not None:
            return ip
        try:
            addresses = await self._resolver.addresses(destination.host)
        except DnsError as exc:
            raise FederationRequestError(f"{destination.host}: {exc}") from exc
        if not addresses:
            raise FederationRequestError(f"{destination.host} has no address")
        return addresses[0]

    async def _prepare(self, method: str, server_name: str, path: str,
                       query: Mapping[str, str] | None, content: Any,
                       signed: bool) -> tuple[yarl.URL, dict[str, str], bytes | None, str]:
        """URL, headers, body and TLS name of one request to ``server_name``."""
        if server_name == self.origin:
            raise DestinationRefused("a server does not federate with itself")
        if not self._allowed(server_name):
            raise DestinationRefused(f"{server_name} is not a federation partner")
        uri = path + ("?" + urllib.parse.urlencode(query) if query else "")
        destination = await self.discovery.resolve(server_name)
        address = await self._address(destination)
        host = f"[{address}]" if ":" in address else address
        headers = {"Host": destination.host_header}
        if signed:
            headers["Authorization"] = authorization_header(
                self._key, self.origin, server_name, method, uri, content)
        body = None if content is None else json.dumps(content).encode("utf-8")
        if body is not None:
            headers["Content-Type"] = "application/json"
        # encoded=True: the URI goes out byte for byte as it was signed.
        url = yarl.URL(f"https://{host}:{destination.port}{uri}", encoded=True)
        return url, headers, body, destination.tls_name

    async def request(self, method: str, server_name: str, path: str, *,
                      query: Mapping[str, str] | None = None, content: Any = None,
                      signed: bool = True) -> Any:
        """Send one request to ``server_name`` and return its decoded JSON answer."""
        url, headers, body, tls_name = await self._prepare(method, server_name, path, query,
                                                           content, signed)
        try:
            async with self._http().request(
                    method, url, data=body, headers=headers, server_hostname=tls_name,
                    timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
                    allow_redirects=False) as response:
                raw = await response.content.read(MAX_RESPONSE_BYTES + 1)
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            raise FederationRequestError(f"{server_name}: {exc.__class__.__name__}") from exc
        if len(raw) > MAX_RESPONSE_BYTES:
            raise FederationRequestError(f"{server_name}: answer too large", status)
        try:
            decoded = json.loads(raw) if raw else {}
        except ValueError:
            raise FederationRequestError(f"{server_name}: answer is not JSON", status) from None
        if status != 200:
            raise FederationRequestError(f"{server_name} answered {status}", status,
                                         decoded if isinstance(decoded, dict) else None)
        return decoded


@dataclass(frozen=True)
class DownloadedMedia:
    """A file from another server's media endpoint."""

    content_type: str
    content_disposition: str
    data: bytes


async def _read_limited(part: aiohttp.BodyPartReader, max_bytes: int, server: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(MEDIA_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise FederationRequestError(f"{server}: the file is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def download_media(client: FederationClient, server_name: str, path: str, *,
                         max_bytes: int, query: Mapping[str, str] | None = None
                         ) -> DownloadedMedia:
    """``GET /_matrix/federation/v1/media/download|thumbnail/...`` (spec v1.11
    "Content repository"): a ``multipart/mixed`` answer whose first part is JSON
    metadata and whose second is the file (a ``Location`` redirect instead is
    refused: this server fetches from federation listeners only).  At most
    ``max_bytes`` are read."""
    url, headers, _, tls_name = await client._prepare("GET", server_name, path, query, None,
                                                      True)
    try:
        async with client._http().get(
                url, headers=headers, server_hostname=tls_name,
                timeout=aiohttp.ClientTimeout(total=MEDIA_TIMEOUT_SECONDS),
                allow_redirects=False) as response:
            if response.status != 200:
                raw = await response.content.read(MAX_WELL_KNOWN_BYTES)
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                raise FederationRequestError(f"{server_name} answered {response.status}",
                                             response.status,
                                             body if isinstance(body, dict) else None)
            if not response.headers.get("Content-Type", "").lower().startswith(
                    "multipart/mixed"):
                raise FederationRequestError(f"{server_name}: not a multipart/mixed answer")
            reader = aiohttp.MultipartReader.from_response(response)
            metadata = await reader.next()
            if not isinstance(metadata, aiohttp.BodyPartReader):
                raise FederationRequestError(f"{server_name}: no metadata part")
            await _read_limited(metadata, MAX_WELL_KNOWN_BYTES, server_name)
            media = await reader.next()
            if not isinstance(media, aiohttp.BodyPartReader):
                raise FederationRequestError(f"{server_name}: no media part")
            if "Location" in media.headers:
                raise FederationRequestError(f"{server_name}: redirects are not followed")
            data = await _read_limited(media, max_bytes, server_name)
            return DownloadedMedia(
                media.headers.get("Content-Type", "application/octet-stream"),
                media.headers.get("Content-Disposition", ""), data)
    except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError, ValueError) as exc:
        raise FederationRequestError(f"{server_name}: {exc.__class__.__name__}") from exc

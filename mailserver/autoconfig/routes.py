"""HTTP routes that let clients configure themselves, on the webmail's HTTPS port:

* ``GET /mail/config-v1.1.xml`` and ``/.well-known/autoconfig/mail/config-v1.1.xml``
  (Thunderbird; the ``autoconfig.<domain>`` CNAME of ``schulhof dns-records``);
* ``POST /autodiscover/autodiscover.xml`` (Outlook; also the capitalised path);
* ``GET /mail/schulhof.mobileconfig?email=...`` (iPhone and Mac profile,
  signed with the server certificate when a signer is given);
* ``GET /.well-known/mta-sts.txt`` (RFC 8461 3.2, for the ``mta-sts.`` host);
* ``GET /.well-known/matrix/client`` and ``/server`` (Matrix discovery).

None of these asks the directory: the same answer for every address of the
school, and one error answer for everything else (no account enumeration).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from mailserver.autoconfig.documents import (
    MailEndpoints,
    apple_profile,
    autodiscover_error,
    autodiscover_response,
    requested_address,
    thunderbird_config,
)

XML = "application/xml"


@dataclass(frozen=True)
class Discovery:
    endpoints: MailEndpoints
    local_domains: frozenset[str]
    mta_sts_policy: str
    matrix_server: str  # JSON of /.well-known/matrix/server
    matrix_client: str  # JSON of /.well-known/matrix/client
    sign: Callable[[bytes], bytes] | None = None  # CMS signature of a profile


def _ours(discovery: Discovery, address: str) -> bool:
    return address.rpartition("@")[2].lower() in discovery.local_domains


def routes(discovery: Discovery) -> list[web.RouteDef]:
    async def thunderbird(request: web.Request) -> web.Response:
        return web.Response(body=thunderbird_config(discovery.endpoints), content_type=XML,
                            charset="utf-8", headers={"Cache-Control": "max-age=3600"})

    async def autodiscover(request: web.Request) -> web.Response:
        body = await request.content.read(16 * 1024 + 1)
        address = requested_address(body)
        if address is None or not _ours(discovery, address):
            return web.Response(body=autodiscover_error(), content_type=XML, charset="utf-8")
        return web.Response(body=autodiscover_response(discovery.endpoints, address),
                            content_type=XML, charset="utf-8")

    async def mobileconfig(request: web.Request) -> web.Response:
        address = request.query.get("email", "").strip()
        if (address.count("@") != 1 or len(address) > 320 or not _ours(discovery, address)
                or any(c in address for c in " <>\"'\\")):
            raise web.HTTPBadRequest(text="email=<address of this school> is needed\n")
        profile = apple_profile(discovery.endpoints, address)
        if discovery.sign is not None:
            profile = discovery.sign(profile)
        return web.Response(body=profile, content_type="application/x-apple-aspen-config",
                            headers={"Content-Disposition":
                                     'attachment; filename="schulhof.mobileconfig"'})

    async def mta_sts(request: web.Request) -> web.Response:
        return web.Response(text=discovery.mta_sts_policy, content_type="text/plain",
                            charset="utf-8")

    def json_document(text: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=text, content_type="application/json",
                                headers={"Access-Control-Allow-Origin": "*"})
        return handler

    return [
        web.get("/mail/config-v1.1.xml", thunderbird),
        web.get("/.well-known/autoconfig/mail/config-v1.1.xml", thunderbird),
        web.post("/autodiscover/autodiscover.xml", autodiscover),
        web.post("/Autodiscover/Autodiscover.xml", autodiscover),
        web.get("/mail/schulhof.mobileconfig", mobileconfig),
        web.get("/.well-known/mta-sts.txt", mta_sts),
        web.get("/.well-known/matrix/server", json_document(discovery.matrix_server)),
        web.get("/.well-known/matrix/client", json_document(discovery.matrix_client)),
    ]

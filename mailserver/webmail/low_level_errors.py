"""Answers to requests that never reach the application: bytes that are not HTTP,
broken header fields, a request line or header over aiohttp's limits.

aiohttp's protocol answers these itself (``RequestHandler.handle_error``) with
``Server: Python/3.x aiohttp/3.x`` and its own English text, which repeats
part of what was sent; neither the middlewares nor ``on_response_prepare``
see that response.  ``WebmailRunner`` (an ``AppRunner``) makes its
connections use ``_Handler``, whose answer is a short German page with the
webmail's usual security headers and no version banner.  The status stays
aiohttp's (RFC 9110 15.5.1: 400 for a malformed request; 431 and 413 for
too-long fields; 500 if a handler broke outside the middlewares).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from mailserver.webmail.security import FIXED_HEADERS, SECURITY_HEADERS

_TEXTS = {
    500: ("Etwas ist schiefgegangen", "Bitte versuchen Sie es später noch einmal."),
}
_DEFAULT = ("Ungültige Anfrage", "Diese Anfrage kann der Server nicht verstehen.")


def error_response(status: int) -> web.Response:
    """The German page for a request aiohttp could not hand to the application."""
    title, text = _TEXTS.get(status, _DEFAULT)
    body = (f'<!doctype html>\n<html lang="de"><head><meta charset="utf-8">'
            f"<title>{title} · Schulhof</title></head>\n"
            f"<body><h1>{title}</h1><p>{text}</p></body></html>\n")
    response = web.Response(status=status, text=body, content_type="text/html",
                            charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    response.headers.update(FIXED_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    response.force_close()
    return response


class _Handler(RequestHandler):
    __slots__ = ()

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # aiohttp's own logs it, and refuses when a response was already started.
        super().handle_error(request, status, exc, message)
        return error_response(status)


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class WebmailRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer malformed requests in German."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The application's Server, built by aiohttp (its handler, request factory,
        # options), only making _Handler protocols.
        server.__class__ = _Server
        return server

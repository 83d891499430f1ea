"""Answers to HTTP requests that never reach an application: bytes that are not
HTTP, broken header fields, a request line or header over aiohttp's limits.

aiohttp's protocol answers these itself (``RequestHandler.handle_error``) with
``Server: Python/3.x aiohttp/3.x`` and its own text, which repeats part of what
was sent; neither the middlewares nor ``on_response_prepare`` see that response.
``ErrorPageRunner`` (an ``AppRunner``) makes its connections use ``_Handler``,
whose answer is the listener's own (``error_page(status)``: the webmail's German
page, the Matrix listeners' JSON error).  The status stays aiohttp's (RFC 9110
15.5.1: 400 for a malformed request; 431 and 413 for too-long fields; 500 if a
handler broke outside the middlewares).  The runner also puts ``Server:
Schulhof`` on the application's own responses, so no listener announces the
versions it runs.

Used by the webmail (mailserver.webmail.low_level_errors) and the Matrix client and
federation listeners (messenger); it lives in ``federation`` because both may
import it from there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

SERVER_HEADER = "Schulhof"

ErrorPage = Callable[[int], web.Response]


class _Handler(RequestHandler):
    __slots__ = ()

    def handle_error(self, request: BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # aiohttp's own logs it, and refuses when a response was already started.
        super().handle_error(request, status, exc, message)
        manager = self._manager
        assert isinstance(manager, _Server)
        response = manager.error_page(status)
        response.headers["Server"] = SERVER_HEADER
        response.force_close()
        return response


class _Server(web.Server):
    error_page: ErrorPage

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER


class ErrorPageRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer malformed requests with
    ``error_page(status)`` and whose responses carry no version banner."""

    def __init__(self, app: web.Application, *, error_page: ErrorPage,
                 **kwargs: Any) -> None:
        app.on_response_prepare.append(_server_header)
        super().__init__(app, **kwargs)
        self._error_page = error_page

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The application's Server, built by aiohttp (its handler, request factory,
        # options), only making _Handler protocols.
        server.__class__ = _Server
        assert isinstance(server, _Server)
        server.error_page = self._error_page
        return server

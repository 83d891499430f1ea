"""The webmail's answer to requests that never reach the application (bytes that
are not HTTP, broken header fields, over-long lines): a short German page with the
webmail's usual security headers and no version banner, instead of aiohttp's page
and ``Server: Python/aiohttp`` (the mechanism: federation.low_level_errors)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from federation.low_level_errors import ErrorPageRunner
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
    return response


class WebmailRunner(ErrorPageRunner):
    """``web.AppRunner`` whose connections answer malformed requests in German."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, error_page=error_response, **kwargs)

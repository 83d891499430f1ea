"""The Matrix listeners' answer to requests that never reach the application
(bytes that are not HTTP, broken header fields, over-long request lines or
fields): a Matrix error object (Client-Server API 3.4 "Standard error response")
instead of aiohttp's text page quoting the request and its ``Server: Python/...
aiohttp/...`` banner (the mechanism: federation.low_level_errors)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from federation.low_level_errors import ErrorPageRunner

_ANSWERS = {
    413: ("M_TOO_LARGE", "Request too large"),
    431: ("M_TOO_LARGE", "Request header fields too large"),
    500: ("M_UNKNOWN", "Internal server error"),
}
_MALFORMED = ("M_UNRECOGNIZED", "Malformed HTTP request")


def matrix_error_response(status: int) -> web.Response:
    errcode, message = _ANSWERS.get(status, _MALFORMED)
    response = web.json_response({"errcode": errcode, "error": message}, status=status)
    # Browsers' Matrix clients must be able to read even this answer (CS API 2.1 CORS).
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-store"
    return response


class MatrixRunner(ErrorPageRunner):
    """``web.AppRunner`` whose connections answer malformed requests with a Matrix
    error object and no version banner."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, error_page=matrix_error_response, **kwargs)

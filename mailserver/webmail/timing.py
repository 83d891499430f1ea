"""``Server-Timing`` (W3C Server Timing) on every webmail response: the time the
server spent on the request, so a browser's devtools and the benchmark
(``tests/bench/webmail_pages.py``) see server time apart from the network."""

from __future__ import annotations

import time

from aiohttp import web

from mailserver.webmail.security import Handler


@web.middleware
async def server_timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["Server-Timing"] = _value(started)
        raise
    response.headers["Server-Timing"] = _value(started)
    return response


def _value(started: float) -> str:
    return f"app;dur={(time.perf_counter() - started) * 1000:.2f}"

"""``Server-Timing`` (W3C Server Timing) on every webmail response: the time the
server spent on the request (``app``), so a browser's devtools and the benchmark
(``tests/bench/webmail_pages.py``) see server time apart from the network, and
its parts (``directory.request_timing``): ``auth`` (session and account),
the page's own phases, ``pool`` (waiting for a database connection, including
opening one), ``sql`` (statements on a connection), ``render`` (the template)."""

from __future__ import annotations

import time

from aiohttp import web

from directory import request_timing
from mailserver.webmail.security import Handler


@web.middleware
async def server_timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    timings, token = request_timing.start()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["Server-Timing"] = _value(started, timings)
        raise
    finally:
        request_timing.stop(token)
    response.headers["Server-Timing"] = _value(started, timings)
    return response


def _value(started: float, timings: request_timing.RequestTimings) -> str:
    parts = [f"app;dur={(time.perf_counter() - started) * 1000:.2f}"]
    parts += [f"{name};dur={seconds * 1000:.2f}" for name, seconds in timings.parts.items()]
    return ", ".join(parts)

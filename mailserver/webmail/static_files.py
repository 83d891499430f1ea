"""The webmail's own style sheets and script (``static/``), by name only.

aiohttp's ``web.static`` answers a missing file with an empty 404 that the
error pages never see (its file response fails only while being sent) and a
directory with its plain 403; here the files are known when the app is built,
and any other name is the German 404 page like every unknown path.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"


def routes(directory: Path = STATIC) -> list[web.RouteDef]:
    files = {path.name: path for path in directory.iterdir() if path.is_file()}

    async def static_file(request: web.Request) -> web.StreamResponse:
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path)  # ETag and Last-Modified: browsers revalidate

    return [web.get("/static/{name}", static_file)]

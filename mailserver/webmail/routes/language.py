"""Choosing the webmail's language ("English" / "Deutsch" on every page)."""

from __future__ import annotations

from aiohttp import web

from mailserver.webmail.i18n import LANGUAGE_COOKIE, LOCALES


def safe_next(target: str) -> str:
    """Back to a page of ours only: a local path, never "//host" or a scheme."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) \
            and target.isprintable():
        return target
    return "/mail"


async def choose_language(request: web.Request) -> web.StreamResponse:
    chosen = request.query.get("lang", "")
    response = web.HTTPSeeOther(safe_next(request.query.get("next", "/mail")))
    if chosen in LOCALES:
        response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 24 * 3600, secure=True,
                            httponly=True, samesite="Lax", path="/")
    raise response


def routes() -> list[web.RouteDef]:
    return [web.get("/sprache", choose_language)]

"""Rendering the webmail's pages: the Jinja2 environment, pages and error pages."""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

from mailserver.webmail.context import TEMPLATES, WEBMAIL
from mailserver.webmail.sessions import WebSession

HERE = Path(__file__).parent


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def page(request: web.Request, template: str, status: int = 200,
         **values: object) -> web.Response:
    """``template`` rendered with ``values``; ``session``/``folders``/``mailbox`` default
    to None (the frame shows the folder list and the logout button only with them)."""
    webmail = request.app[WEBMAIL]
    values.setdefault("session", None)
    values.setdefault("folders", None)
    values.setdefault("mailbox", None)
    text = request.app[TEMPLATES].get_template(template).render(
        school=webmail.school_name, **values)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, status: int, title: str, text: str,
               session: WebSession | None = None) -> web.Response:
    return page(request, "error.html", status, title=title, text=text, session=session)

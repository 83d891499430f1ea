"""The files of a compose form (HTML multipart/form-data) as ``compose.Upload``s."""

from __future__ import annotations

import urllib.parse
from typing import Any

from aiohttp import web

from mailserver.webmail.compose import Upload


def uploads(form: Any) -> list[Upload]:
    """The files of the compose form's ``attachments`` field (empty ones skipped)."""
    found = []
    for item in form.getall("attachments", []):
        if not isinstance(item, web.FileField):
            continue
        data = item.file.read()
        if not data and not item.filename:
            continue  # the browser's empty file input
        kind = item.content_type or ""
        if kind.count("/") != 1 or not all(kind.split("/")):
            kind = "application/octet-stream"
        found.append(Upload(upload_filename(item.filename), kind, data))
    return found


def upload_filename(raw: str | None) -> str:
    """A file name as it goes into the mail: browsers escape '"', CR and LF as %22,
    %0D, %0A (HTML multipart/form-data) and some clients percent-encode it all; old
    ones send a whole Windows path.  No control characters, at most 200 characters."""
    name = urllib.parse.unquote(raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[:200] or "attachment"

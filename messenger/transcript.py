"""A readable HTML transcript of a room's events, for a data export (GDPR Art. 15).

Streamed: ``begin`` once, ``event`` per event in stream order, ``end`` once;
nothing is kept but the names seen so far.  Everything from events is
escaped (a message body is untrusted text).  The wording is German, the
language of the people who read it (the export is for them).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from typing import Any

_STYLE = ("body{font-family:sans-serif;max-width:50em;margin:2em auto}"
          ".t{color:#666;font-size:.85em}.s{font-weight:bold}.n{color:#666;font-style:italic}"
          "p{margin:.3em 0}")

_MEMBERSHIP = {"join": "ist beigetreten", "leave": "hat den Raum verlassen",
               "invite": "wurde eingeladen", "ban": "wurde gesperrt", "knock": "möchte beitreten"}


def begin(room_id: str, title: str) -> str:
    t = html.escape(title or room_id)
    return (f'<!DOCTYPE html>\n<html lang="de"><head><meta charset="utf-8">'
            f"<title>{t}</title><style>{_STYLE}</style></head><body>\n"
            f"<h1>{t}</h1>\n<p class=\"n\">Raum {html.escape(room_id)}</p>\n")


def end() -> str:
    return "</body></html>\n"


def _when(ts: object) -> str:
    if not isinstance(ts, int):
        return ""
    return dt.datetime.fromtimestamp(ts / 1000, dt.UTC).strftime("%d.%m.%Y %H:%M UTC")


def event(pdu: Mapping[str, Any], names: dict[str, str]) -> str:
    """One event as a paragraph ('' for events a reader need not see); ``names``
    (user id -> display name) is updated from membership events."""
    kind = pdu.get("type")
    content = pdu.get("content") or {}
    sender = str(pdu.get("sender", ""))
    if kind == "m.room.member":
        target = str(pdu.get("state_key", ""))
        if isinstance(content.get("displayname"), str):
            names[target] = content["displayname"]
        what = _MEMBERSHIP.get(str(content.get("membership")), "")
        if not what:
            return ""
        text = f"{names.get(target, target)} {what}"
        return (f'<p class="n"><span class="t">{_when(pdu.get("origin_server_ts"))}</span> '
                f"{html.escape(text)}</p>\n")
    if kind == "m.room.name" and isinstance(content.get("name"), str):
        text = f"Raumname: {content['name']}"
    elif kind in ("m.room.message", "m.sticker"):
        body = content.get("body")
        text = body if isinstance(body, str) else "(gelöscht)"
    elif kind == "m.room.encrypted":
        text = "(verschlüsselte Nachricht: nur auf den Geräten lesbar)"
    else:
        return ""
    who = names.get(sender, sender)
    lines = "<br>".join(html.escape(line) for line in text.split("\n"))
    return (f'<p><span class="t">{_when(pdu.get("origin_server_ts"))}</span> '
            f'<span class="s">{html.escape(who)}</span>: {lines}</p>\n')

"""Command class -> (handler, states where it is valid) for every command
the wire layer parses (RFC 9051 6: commands by state)."""

from __future__ import annotations

from typing import Any

from mailserver.imap.session import fetch, greeting, mailboxes, messages, search, selecting

HANDLERS: dict[type, Any] = {
    **greeting.HANDLERS,
    **mailboxes.HANDLERS,
    **selecting.HANDLERS,
    **fetch.HANDLERS,
    **search.HANDLERS,
    **messages.HANDLERS,
}

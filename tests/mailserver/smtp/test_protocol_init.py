"""SchulhofSMTP sets itself up as aiosmtpd's ``SMTP.__init__`` would, tables found once.

``SchulhofSMTP.__init__`` does what aiosmtpd's does for our options but takes
the command, hook and AUTH tables from ``CommandTables`` (found once per class)
instead of ``inspect.getmembers`` per connection (issue 15).  These tests build
the same connection both ways and compare every attribute, so an aiosmtpd
release that sets up more (or different) state fails here, not in production.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from federation.connection_limits import ConnectionLimiter
from mailserver.smtp.command_table import CommandTables
from mailserver.smtp.config import ListenerKind, SmtpLimits
from mailserver.smtp.protocol import SchulhofSMTP
from mailserver.smtp.session import SmtpSession

LIMITS = SmtpLimits()
# The three listeners' options, as mailserver.smtp.server passes them.
TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
OPTIONS: dict[ListenerKind, dict[str, Any]] = {
    ListenerKind.MX: {"tls_context": TLS, "auth_exclude_mechanism": ("PLAIN", "LOGIN")},
    ListenerKind.SUBMISSION: {"tls_context": TLS, "require_starttls": True,
                              "auth_required": True},
    ListenerKind.SUBMISSIONS: {"auth_required": True, "implicit_tls": True},
}
COMMON: dict[str, Any] = {"hostname": "mx.schule.test", "ident": "Schulhof ESMTP",
                          "data_size_limit": LIMITS.max_message_size, "enable_SMTPUTF8": True,
                          "timeout": LIMITS.idle_timeout_seconds}


def _handler(kind: ListenerKind) -> SmtpSession:
    return SmtpSession(None, kind)  # type: ignore[arg-type]  # only its methods are read


def _ours(kind: ListenerKind, tables: CommandTables) -> SchulhofSMTP:
    return SchulhofSMTP(_handler(kind), limits=LIMITS, limiter=ConnectionLimiter(10),
                        on_opened=lambda _: None, on_closed=lambda _: None, tables=tables,
                        **COMMON, **OPTIONS[kind])


def _aiosmtpd(kind: ListenerKind) -> SchulhofSMTP:
    """The same object set up by aiosmtpd's own __init__ (what SchulhofSMTP did before)."""
    options = dict(OPTIONS[kind])
    implicit = options.pop("implicit_tls", False)
    protocol = SchulhofSMTP.__new__(SchulhofSMTP)
    protocol.line_length_limit = LIMITS.max_line_length + 1
    SMTP.__init__(protocol, _handler(kind), **COMMON, **options)
    if implicit:
        protocol._auth_require_tls = False
    return protocol


def _comparable(name: str, value: Any) -> Any:
    if name in ("_smtp_methods", "_handle_hooks"):
        return {verb: method.__func__ for verb, method in value.items()}
    if name == "_auth_methods":
        return {m: (a.method.__func__, a.is_builtin) for m, a in value.items()}
    if name == "require_starttls":  # aiosmtpd: ``tls_context and ...``, None without TLS
        return bool(value)
    if name == "command_size_limits":
        return dict(value), value["MAIL"]
    if isinstance(value, (asyncio.StreamReader, asyncio.Future, SmtpSession)) \
            or callable(value) or name in ("_stream_reader_wr", "_source_traceback"):
        return type(value)  # a fresh object per connection: the same kind is enough
    return value


@pytest.mark.parametrize("kind", list(ListenerKind))
async def test_same_state_as_aiosmtpd_init(kind: ListenerKind) -> None:
    tables = CommandTables()
    reference = _aiosmtpd(kind)
    for protocol in (_ours(kind, tables), _ours(kind, tables)):  # found, then cached
        ours = vars(protocol)
        ours_only = {"session_handler", "_limits", "_limiter", "_on_opened", "_on_closed",
                     "_errors", "_client_ip", "_refused", "_finished", "_continued",
                     "_chunks", "command_size_limits"}
        assert set(vars(reference)) <= set(ours)
        assert set(ours) - set(vars(reference)) <= ours_only
        for name, value in vars(reference).items():
            if name == "_smtp_methods":
                assert dict(ours[name]).keys() == value.keys()
            assert _comparable(name, ours[name]) == _comparable(name, value), name
        # Bound to this connection's objects, not the first one's.
        assert protocol._smtp_methods["DATA"].__self__ is protocol
        assert protocol._handle_hooks["DATA"].__self__ is protocol.event_handler


async def test_mail_size_limit_is_per_connection() -> None:
    """aiosmtpd raises MAIL's line limit on EHLO in a dict its class shares (and every
    new connection clears it); each of ours has its own."""
    tables = CommandTables()
    first, second = _ours(ListenerKind.MX, tables), _ours(ListenerKind.MX, tables)
    first.command_size_limits["MAIL"] += 26
    assert second.command_size_limits["MAIL"] == SMTP.command_size_limit
    assert first.command_size_limits["MAIL"] == SMTP.command_size_limit + 26

"""What this server advertises (RFC 9051 6.1.1, 7.2.2): only what works.

Before authentication the list depends on TLS: on a cleartext connection
``STARTTLS`` and ``LOGINDISABLED`` are offered and no ``AUTH=`` mechanism
(RFC 9051 6.2.1, 11.1); once TLS is up ``AUTH=PLAIN`` (with ``SASL-IR``,
RFC 4959) appears. After login the extension list is sent.
"""

from __future__ import annotations

BASE = ("IMAP4rev1", "IMAP4rev2", "LITERAL+", "ENABLE", "ID", "SASL-IR")

EXTENSIONS = (
    "IDLE", "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN",
    "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE",
    "ESEARCH", "SEARCHRES", "CONDSTORE", "QRESYNC", "QUOTA", "QUOTA=RES-STORAGE",
    "STATUS=SIZE", "BINARY",
)

# What ENABLE accepts (RFC 5161 3.1); UTF8=ACCEPT follows IMAP4rev2's names.
ENABLEABLE = frozenset({"CONDSTORE", "QRESYNC", "IMAP4REV2"})


def capabilities(*, tls: bool, tls_available: bool, authenticated: bool,
                 append_limit: int) -> tuple[str, ...]:
    """The CAPABILITY list for this connection's state."""
    if authenticated:
        return (*BASE, *EXTENSIONS, f"APPENDLIMIT={append_limit}")
    if tls:
        return (*BASE, "AUTH=PLAIN")
    starttls = ("STARTTLS",) if tls_available else ()
    return (*BASE, *starttls, "LOGINDISABLED")

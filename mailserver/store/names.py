"""Mailbox names: the '/' hierarchy, INBOX, and the default folders.

Names are stored decoded (Unicode); modified UTF-7 is the IMAP wire's business
(RFC 3501 5.1.3).  ``INBOX`` is case-insensitive, also as the first level of a
hierarchical name (RFC 9051 5.1); every other name is case-sensitive.
"""

from __future__ import annotations

from mailserver.store.model import InvalidMailboxName

SEPARATOR = "/"
INBOX = "INBOX"
MAX_NAME_LENGTH = 1000

# Created for every account on first use (RFC 6154 special-use attributes).
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    (INBOX, None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)
SPECIAL_USES = frozenset({"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk",
                          "\\Sent", "\\Trash"})


def normalise(name: str) -> str:
    """A valid stored name, or InvalidMailboxName.

    Empty levels ("a//b", "/a", "a/") are refused rather than silently
    collapsed, so a name always round-trips unchanged.
    """
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidMailboxName("empty or too long mailbox name")
    if not name.isprintable() or any(c in name for c in "*%"):
        raise InvalidMailboxName(f"mailbox name {name!r} has a forbidden character")
    parts = name.split(SEPARATOR)
    if any(not part for part in parts):
        raise InvalidMailboxName(f"mailbox name {name!r} has an empty level")
    if any(part.strip() in (".", "..") for part in parts):
        # Path-like levels would read as "this" / "up" to people and tools.
        raise InvalidMailboxName(f"mailbox name {name!r} has a '.' or '..' level")
    if parts[0].upper() == INBOX:
        parts[0] = INBOX
    return SEPARATOR.join(parts)


def parents(name: str) -> list[str]:
    """The superior names of ``name``, outermost first ("a/b/c" -> ["a", "a/b"])."""
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:i]) for i in range(1, len(parts))]


def is_inferior(name: str, of: str) -> bool:
    return name.startswith(of + SEPARATOR)


def check_special_use(special_use: str | None) -> str | None:
    if special_use is None:
        return None
    for known in SPECIAL_USES:
        if known.lower() == special_use.lower():
            return known
    raise InvalidMailboxName(f"unknown special-use attribute {special_use!r}")

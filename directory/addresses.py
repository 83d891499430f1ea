"""Mail address normalisation shared by every protocol.

Local parts are compared case-insensitively (RFC 5321 allows case-sensitive
local parts, but every real provider folds them; folding stops tricks like
``Admin@`` and ``admin@`` meaning two people).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# What we hand out and accept for our own local parts: dot-atoms of a safe alphabet.
LOCAL_PART_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")


@dataclass(frozen=True)
class MailAddress:
    local_part: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain}"


# Local parts the server itself uses: the messenger's system user @schulhof:domain.
RESERVED_LOCAL_PARTS = frozenset({"schulhof"})


def normalise_domain(domain: str) -> str:
    """Lower-case, strip one trailing root dot, IDNA-encode non-ASCII labels."""
    domain = domain.strip()
    if domain.endswith("."):
        domain = domain[:-1]
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return domain.lower()


def is_valid_local_part(local_part: str) -> bool:
    return bool(LOCAL_PART_RE.match(local_part)) and ".." not in local_part

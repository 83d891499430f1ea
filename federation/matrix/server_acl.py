"""Server access control lists of rooms (Client-Server API "Server Access Control
Lists (ACLs) for rooms", ``m.room.server_acl``; Server-Server API "Server Access
Control Lists"): which servers may take part in a room.

A server name is judged without its port: an IP literal is denied unless
``allow_ip_literals`` (default true); a name matching a ``deny`` glob is denied;
otherwise it must match an ``allow`` glob (a missing ``allow`` allows nobody).
In the globs ``*`` matches zero or more characters and ``?`` exactly one; host
names compare without regard to case.  Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

EVENT_TYPE = "m.room.server_acl"
MAX_GLOB_LENGTH = 255


def glob_pattern(glob: str) -> re.Pattern[str]:
    """The regular expression of one ACL glob (``*`` and ``?`` wildcards only)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def glob_matches(glob: str, name: str) -> bool:
    return glob_pattern(glob).fullmatch(name) is not None


def host_of(server_name: str) -> str:
    """``server_name`` without its port (``[v6]:8448`` -> ``[v6]``)."""
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name[:end + 1] if end >= 0 else server_name
    return server_name.rsplit(":", 1)[0] if server_name.count(":") == 1 else server_name


def is_ip_literal(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _globs(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(g for g in value if isinstance(g, str) and len(g) <= MAX_GLOB_LENGTH)


@dataclass(frozen=True)
class ServerAcl:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    allow_ip_literals: bool = True
    _allow: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _deny: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", tuple(glob_pattern(g) for g in self.allow))
        object.__setattr__(self, "_deny", tuple(glob_pattern(g) for g in self.deny))

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> ServerAcl:
        """From an event's content; entries that are not strings are ignored, and a
        non-boolean ``allow_ip_literals`` counts as true (as the spec says)."""
        literals = content.get("allow_ip_literals", True)
        return cls(_globs(content.get("allow")), _globs(content.get("deny")),
                   literals if isinstance(literals, bool) else True)

    @classmethod
    def only(cls, servers: Iterable[str]) -> ServerAcl:
        """An ACL that lets exactly these servers (any port) take part."""
        hosts = sorted({host_of(s).lower() for s in servers})
        escaped = [h for h in hosts if "*" not in h and "?" not in h]
        return cls(tuple(escaped), (), False)

    def content(self) -> dict[str, Any]:
        return {"allow": list(self.allow), "deny": list(self.deny),
                "allow_ip_literals": self.allow_ip_literals}

    def allows(self, server_name: str) -> bool:
        host = host_of(server_name)
        if not self.allow_ip_literals and is_ip_literal(host):
            return False
        if any(p.fullmatch(host) for p in self._deny):
            return False
        return any(p.fullmatch(host) for p in self._allow)

"""Plain configuration values of the SMTP service (made by conf.wiring.smtp)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path


class ListenerKind(enum.Enum):
    """The three SMTP listeners (RFC 5321 relay/MX, RFC 6409 submission, RFC 8314 465)."""

    MX = "mx"
    SUBMISSION = "submission"
    SUBMISSIONS = "submissions"

    @property
    def service_name(self) -> str:
        return f"smtp-{self.value}"

    @property
    def implicit_tls(self) -> bool:
        """RFC 8314 3.3: TLS from the first byte, no STARTTLS."""
        return self is ListenerKind.SUBMISSIONS

    @property
    def requires_auth(self) -> bool:
        """RFC 6409 4.3: a submission server authenticates every client."""
        return self is not ListenerKind.MX


@dataclass(frozen=True)
class SmtpLimits:
    """Per-connection limits; each has its own reply (see mailserver.smtp.replies)."""

    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 100
    max_line_length: int = 1000
    max_errors: int = 10
    idle_timeout_seconds: float = 300.0
    max_connections_per_ip: int = 20


@dataclass(frozen=True)
class SmtpConfig:
    """Everything the SMTP service needs to know, as plain values.

    Ports: 0 picks a free port, -1 disables the listener.
    """

    hostname: str
    local_domains: frozenset[str]
    certificate: Path
    key: Path
    bind: str = "127.0.0.1"
    mx_port: int = -1
    submission_port: int = -1
    submissions_port: int = -1
    limits: SmtpLimits = SmtpLimits()
    # How long a recipient lookup is reused (mailserver.smtp.routing.ResolveCache); 0: never.
    directory_cache_seconds: float = 5.0
    # How long stop() lets transactions that are committing finish before closing.
    stop_grace_seconds: float = 10.0
    # SO_REUSEPORT: several ``serve`` workers listen on the same ports.
    reuse_port: bool = False

    def port(self, kind: ListenerKind) -> int:
        return {ListenerKind.MX: self.mx_port, ListenerKind.SUBMISSION: self.submission_port,
                ListenerKind.SUBMISSIONS: self.submissions_port}[kind]

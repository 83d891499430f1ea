"""The SMTP server: inbound MX, submission (STARTTLS) and submissions (implicit TLS).

Built on aiosmtpd: the library speaks the protocol, this package makes the
decisions (mailserver.smtp.session, .routing) and adds what aiosmtpd has no
hook for (mailserver.smtp.protocol).  Addresses, replies and header work are
pure modules (.addresses, .replies, .headers).  It never imports ``conf``:
the wiring hands it an ``SmtpConfig`` and the school's objects.
"""

from __future__ import annotations

from mailserver.smtp.config import ListenerKind, SmtpConfig, SmtpLimits
from mailserver.smtp.server import SmtpService

__all__ = ["ListenerKind", "SmtpConfig", "SmtpLimits", "SmtpService"]

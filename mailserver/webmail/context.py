"""What every webmail handler reaches through the aiohttp app: the school's ``Webmail``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from directory.auth import Authenticator
from directory.client_address import TrustedProxies
from directory.service import Directory
from mailserver.sieve.managed_vacation import VacationScripts
from mailserver.submission import Submitter
from mailserver.unsubscribe import UnsubscribeLinks
from mailserver.webmail.reading import Mail
from mailserver.webmail.sessions import Sessions


class DigestSetting(Protocol):
    """A person's own choice of room digests by mail (issue 18.2; the messenger keeps
    it, the composition root hands it in: this package does not import the messenger)."""

    async def enabled(self, account_id: int) -> bool: ...

    async def set_enabled(self, account_id: int, enabled: bool) -> None: ...


@dataclass(frozen=True)
class Webmail:
    """What the handlers need, one per school."""

    school_name: str
    domain: str
    directory: Directory
    authenticator: Authenticator
    mail: Mail
    submitter: Submitter
    sessions: Sessions
    # The vacation form's reply, kept in the account's Sieve script (None: in the
    # mail settings only, for set-ups without Sieve).
    vacation: VacationScripts | None = None
    max_message_size: int = 25 * 1024 * 1024  # the SMTP limit: what other servers take
    # Room digests by mail (the settings page and the one-click link); None: no digests.
    digests: DigestSetting | None = None
    # The digests' one-click unsubscribe links (RFC 8058); None: none are sent.
    unsubscribe: UnsubscribeLinks | None = None
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)


WEBMAIL = web.AppKey("webmail", Webmail)
# One Jinja2 environment per language (pages.environments).
TEMPLATES = web.AppKey("templates", dict)


def client_ip(request: web.Request) -> str:
    """The browser's address, also behind a trusted reverse proxy (login throttling)."""
    peer = request.remote or "unknown"
    return request.app[WEBMAIL].trusted_proxies.client_address(
        peer, request.headers.getall("X-Forwarded-For", []))

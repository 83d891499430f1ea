"""Account management a Matrix client may do (spec: Client-Server API v1.12
"Account management"): changing the password, under the directory's rule.

The directory owns the password (mail, webmail and the messenger share it), so
a change here is a change everywhere; user-interactive auth with the current
password proves it is the owner, not someone holding a stolen access token.
"""

from __future__ import annotations

import logging

from directory.passwords import PasswordRejected, check_new_password
from directory.service import Directory
from messenger.identity import Requester
from messenger.rooms.errors import MessengerError
from messenger.sessions import Sessions

log = logging.getLogger("schulhof.messenger")


class WeakPassword(MessengerError):
    """The new password breaks the directory's rule (400 M_WEAK_PASSWORD)."""


class PasswordChange:
    def __init__(self, sessions: Sessions, directory: Directory) -> None:
        self._sessions = sessions
        self._directory = directory

    async def change(self, requester: Requester, new_password: str, auth: object,
                     client_ip: str, *, logout_devices: bool) -> None:
        """Check the rule first (a weak password must not cost the user an auth
        round), then the current password, then store; optionally end every
        other session of the account."""
        try:
            check_new_password(new_password)
        except PasswordRejected as exc:
            raise WeakPassword(str(exc)) from None
        await self._sessions.check_user_interactive_auth(requester, auth, client_ip)
        await self._directory.set_password(requester.account.login, new_password)
        ended = await self._sessions.log_out_other_devices(requester) if logout_devices else []
        log.info("event=matrix_password_changed user=%s other_devices_logged_out=%d",
                 requester.user_id, len(ended))

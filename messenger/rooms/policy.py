"""The school's role policy applied to chat: who may open a conversation with whom.

Mail is one-way, a room is not: once both are in a room either can write to
the other.  So an invitation needs the policy to allow *both* directions
(inviter -> invitee and invitee -> inviter); a pupil cannot pull a parent who
may not write to them into a chat, and a parent cannot reach a pupil who is
not their child.
"""

from __future__ import annotations

from typing import Protocol

from directory.model import Account, NotFound
from directory.policy import Verdict
from messenger.events.identifiers import InvalidIdentifier, UserId
from messenger.rooms.errors import Forbidden, InvalidRequest


class ContactDirectory(Protocol):
    """What the messenger needs of ``directory.service.Directory``."""

    async def get_account(self, login: str) -> Account: ...

    async def may_contact(self, sender: Account, address: str) -> Verdict: ...


class ChatPolicy:
    def __init__(self, directory: ContactDirectory, server_name: str, mail_domain: str) -> None:
        self._directory = directory
        self._server_name = server_name
        self._mail_domain = mail_domain

    def address_of(self, user_id: str) -> str:
        """``@login:server`` -> ``login@domain`` (the directory's address)."""
        user = UserId.parse(user_id)
        return f"{user.localpart}@{self._mail_domain}"

    async def local_account(self, user_id: str) -> Account:
        try:
            user = UserId.parse(user_id)
        except InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        if user.server != self._server_name:
            raise Forbidden(f"{user_id} is on another server; federation is not available yet")
        try:
            return await self._directory.get_account(user.localpart)
        except NotFound:
            raise InvalidRequest(f"unknown user {user_id}") from None

    async def check_may_invite(self, inviter: Account, inviter_user_id: str,
                               invitee_user_id: str) -> None:
        """Raise ``Forbidden`` with the policy's reason unless both may write to each other."""
        invitee = await self.local_account(invitee_user_id)
        if not invitee.is_active:
            raise Forbidden(f"{invitee_user_id} cannot be invited (account not active)")
        verdict = await self._directory.may_contact(inviter, self.address_of(invitee_user_id))
        if not verdict.allowed:
            raise Forbidden(verdict.reason or "the school's policy does not allow this contact")
        back = await self._directory.may_contact(invitee, self.address_of(inviter_user_id))
        if not back.allowed:
            raise Forbidden(f"{invitee_user_id} may not write to you: {back.reason}")

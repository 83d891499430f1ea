"""The school's role policy applied to chat: who may open a conversation with whom.

Mail is one-way, a room is not: once both are in a room either can write to
the other.  So an invitation needs the policy to allow *both* directions
(inviter -> invitee and invitee -> inviter); a pupil cannot pull a parent who
may not write to them into a chat, and a parent cannot reach a pupil who is
not their child.

Users of other servers (Server-Server API) are reachable only on servers the
school federates with (``federates_with``: partner schools and the admin's
list); the role policy then treats them as it treats mail to that domain
(pupils only to partner schools if ``policy.pupils_partner_schools``).  The
other direction is the other school's to judge; for invitations arriving here
this school judges its own user's side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from directory.model import Account, Group, MemberRole, NotFound
from directory.policy import Verdict
from messenger.chat_rights import ChatAction, ChatRights
from messenger.events.identifiers import InvalidIdentifier, UserId
from messenger.rooms.errors import Forbidden, InvalidRequest


class ContactDirectory(Protocol):
    """What the messenger needs of ``directory.service.Directory``."""

    async def get_account(self, login: str) -> Account: ...

    async def may_contact(self, sender: Account, address: str) -> Verdict: ...

    async def groups_of(self, login: str) -> list[tuple[Group, MemberRole]]: ...


class ChatPolicy:
    def __init__(self, directory: ContactDirectory, server_name: str, mail_domain: str,
                 federates_with: Callable[[str], bool] | None = None,
                 rights: ChatRights | None = None) -> None:
        self._directory = directory
        # The school's messenger rights (messenger.chat_rights); None: no restriction.
        self.rights = rights
        self._server_name = server_name
        self._mail_domain = mail_domain
        # None: this server reaches no other server (no federation configured).
        self.federates_with = federates_with

    def is_remote(self, user_id: str) -> bool:
        try:
            return UserId.parse(user_id).server != self._server_name
        except InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None

    def check_server_reachable(self, user_id: str) -> None:
        """Raise ``Forbidden`` unless the user's server is one the school federates with."""
        server = UserId.parse(user_id).server
        if self.federates_with is None:
            raise Forbidden(f"{user_id} is on another server and this school has no "
                            "Matrix federation")
        if not self.federates_with(server):
            raise Forbidden(f"{server} is not a federation partner of {self._server_name}")

    @staticmethod
    def remote_address(user_id: str) -> str:
        """``@login:server`` of another school -> ``login@server`` (its mail address:
        a school's Matrix server name is its mail domain)."""
        user = UserId.parse(user_id)
        return f"{user.localpart}@{user.server}"

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

    async def check_right(self, account: Account, action: ChatAction) -> None:
        """Raise ``Forbidden`` unless the account's role or one of its groups has the right."""
        if self.rights is None:
            return
        if self.rights.allows(action, account.role):
            return
        groups = [g.name for g, _ in await self._directory.groups_of(account.login)]
        if not self.rights.allows(action, account.role, groups):
            raise Forbidden("the school does not let you create rooms"
                            if action is ChatAction.CREATE_ROOM else
                            "the school does not let you start chats (you can answer in "
                            "chats others opened with you)")

    async def check_may_invite(self, inviter: Account, inviter_user_id: str,
                               invitee_user_id: str) -> None:
        """Raise ``Forbidden`` with the policy's reason unless both may write to each other
        and the inviter may start chats."""
        await self.check_right(inviter, ChatAction.START_DIRECT)
        if self.is_remote(invitee_user_id):
            self.check_server_reachable(invitee_user_id)
            verdict = await self._directory.may_contact(
                inviter, self.remote_address(invitee_user_id))
            if not verdict.allowed:
                raise Forbidden(verdict.reason or "the school's policy does not allow this "
                                "contact")
            return
        invitee = await self.local_account(invitee_user_id)
        if not invitee.is_active:
            raise Forbidden(f"{invitee_user_id} cannot be invited (account not active)")
        verdict = await self._directory.may_contact(inviter, self.address_of(invitee_user_id))
        if not verdict.allowed:
            raise Forbidden(verdict.reason or "the school's policy does not allow this contact")
        back = await self._directory.may_contact(invitee, self.address_of(inviter_user_id))
        if not back.allowed:
            raise Forbidden(f"{invitee_user_id} may not write to you: {back.reason}")

    async def check_remote_inviter(self, invitee: Account, invitee_user_id: str,
                                   inviter_user_id: str) -> None:
        """An invitation from another server: the invitee must be active and allowed
        to write to the inviter (this school's side of the policy)."""
        self.check_server_reachable(inviter_user_id)
        if not invitee.is_active:
            raise Forbidden(f"{invitee_user_id} cannot be invited (account not active)")
        verdict = await self._directory.may_contact(invitee,
                                                    self.remote_address(inviter_user_id))
        if not verdict.allowed:
            raise Forbidden(f"{invitee_user_id} may not write to {inviter_user_id}: "
                            f"{verdict.reason}")

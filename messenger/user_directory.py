"""The user directory search (spec: Client-Server API 10.13 "User directory"),
limited by the school's role policy: a user finds only people they could open
a chat with, i.e. whom they may write to and who may write back to them (the
same two-way check as an invitation, messenger.rooms.policy)."""

from __future__ import annotations

from dataclasses import dataclass

from directory.model import Account
from directory.service import Directory

MAX_CANDIDATES = 200  # policy checks per search: bounded work for a one-letter term


@dataclass(frozen=True)
class UserMatch:
    user_id: str
    display_name: str


class UserDirectory:
    def __init__(self, directory: Directory, server_name: str, mail_domain: str) -> None:
        self._directory = directory
        self._server_name = server_name
        self._mail_domain = mail_domain

    async def search(self, searcher: Account, term: str, limit: int,
                     ) -> tuple[list[UserMatch], bool]:
        """Matches of ``term`` in login or display name; (results, limited)."""
        words = term.lower().split()
        if not words:
            return [], False
        matches: list[UserMatch] = []
        checked = 0
        for account in await self._directory.list_accounts():
            if account.id == searcher.id or not account.is_active:
                continue
            text = f"{account.login} {account.display_name}".lower()
            if not all(w in text for w in words):
                continue
            if len(matches) >= limit or checked >= MAX_CANDIDATES:
                return matches, True
            checked += 1
            if await self._may_chat(searcher, account):
                matches.append(UserMatch(f"@{account.login}:{self._server_name}",
                                         account.display_name))
        return matches, False

    async def _may_chat(self, a: Account, b: Account) -> bool:
        there = await self._directory.may_contact(a, f"{b.login}@{self._mail_domain}")
        if not there.allowed:
            return False
        back = await self._directory.may_contact(b, f"{a.login}@{self._mail_domain}")
        return back.allowed

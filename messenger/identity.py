"""Who is making a request: a directory account on one of its devices."""

from __future__ import annotations

from dataclasses import dataclass

from directory.model import Account


@dataclass(frozen=True)
class Requester:
    user_id: str  # @login:server
    account: Account
    device_id: str

    @property
    def account_id(self) -> int:
        return self.account.id


def user_id_for(login: str, server_name: str) -> str:
    return f"@{login}:{server_name}"

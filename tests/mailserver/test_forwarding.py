"""Forwarding at delivery: the target rule and the loop guard."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest

from directory.model import Account, Role, Status
from mailserver.delivery import Envelope
from mailserver.forwarding import TRACE, Forwarder, forward_target
from mailserver.store.account_settings import MailSettings


def test_only_school_addresses_are_targets() -> None:
    assert forward_target("k.schaefer", "schule.test") == "k.schaefer@schule.test"
    assert forward_target(" Anna@Schule.test ", "schule.test") == "anna@schule.test"
    assert forward_target("", "schule.test") is None
    for bad in ("anna@gmail.example", "a b@schule.test", "<x>@schule.test", "@schule.test"):
        with pytest.raises(ValueError):
            forward_target(bad, "schule.test")


class _Settings:
    def __init__(self, rules: dict[int, str]) -> None:
        self.rules = rules

    async def forwarding_accounts(self, ids: Sequence[int]) -> set[int]:
        return {i for i in ids if i in self.rules}

    async def get(self, account_id: int) -> MailSettings:
        return MailSettings(forward_to=self.rules[account_id])


async def test_a_message_is_forwarded_once_per_account_and_loops_stop() -> None:
    accounts = {1: Account(1, "anna", "Anna", Role.TEACHER, Status.ACTIVE),
                2: Account(2, "bernd", "Bernd", Role.TEACHER, Status.ACTIVE)}
    sent: list[tuple[str, list[str], bytes]] = []

    async def send(account: Account, sender: str, target: str, message: bytes) -> None:
        sent.append((sender, [target], message))

    async def account_of(account_id: int) -> Account:
        return accounts[account_id]

    forwarder = Forwarder(_Settings({1: "bernd@schule.test", 2: "anna@schule.test"}),  # type: ignore[arg-type]
                          account_of, "schule.test", send)
    envelope = Envelope("eva@eltern.example", dt.datetime.now(dt.UTC))
    await forwarder.delivered(envelope, [1], b"Subject: Hallo\r\n\r\nText\r\n")
    await forwarder.wait()
    ((sender, to, message),) = sent
    assert (sender, to) == ("anna@schule.test", ["bernd@schule.test"])
    assert message.startswith(f"{TRACE}: anna@schule.test\r\nSubject: Hallo".encode())
    # Bernd forwards back to Anna: Anna's forwarding already saw it, it stops there.
    await forwarder.delivered(envelope, [2], message)
    await forwarder.wait()
    assert len(sent) == 2
    await forwarder.delivered(envelope, [1], sent[1][2])
    await forwarder.wait()
    assert len(sent) == 2

"""Deleting devices takes their tokens and the signatures made on their keys with them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conf.app import School
from directory.model import Role
from messenger.storage import devices
from messenger.storage.tables import AccessTokenRow, CrossSigningSignatureRow


async def signed_targets(school: School, account_id: int) -> set[str]:
    async with school.db.read() as session:
        return set(await session.scalars(select(CrossSigningSignatureRow.target_key_id).where(
            CrossSigningSignatureRow.account_id == account_id)))


@pytest.mark.parametrize("deleted", [["PHONE"], None], ids=["one", "all"])
async def test_device_signatures_go_with_the_device(school: School,
                                                    deleted: list[str] | None) -> None:
    anna = await school.directory.create_account(role=Role.TEACHER, login="anna")
    async with school.db.write() as session:
        for device in ("PHONE", "LAPTOP"):
            await devices.ensure_device(session, anna.id, device, device.lower())
            await devices.add_token(session, anna.id, device, f"token-{device}")
            session.add(CrossSigningSignatureRow(
                account_id=anna.id, target_key_id=device, signer_user_id="@anna:schule.test",
                signer_key_id="ed25519:selfsigning", signature="sig"))
        # A signature on a cross-signing key (target = its public key) is not a device's.
        session.add(CrossSigningSignatureRow(
            account_id=anna.id, target_key_id="masterpublickey", signer_user_id="@anna:schule.test",
            signer_key_id="ed25519:PHONE", signature="sig"))
    async with school.db.write() as session:
        await devices.delete_devices(session, anna.id, deleted)
    expected = {"masterpublickey"} | ({"LAPTOP"} if deleted else set())
    assert await signed_targets(school, anna.id) == expected
    async with school.db.read() as session:
        tokens = set(await session.scalars(select(AccessTokenRow.device_id)))
    assert tokens == ({"LAPTOP"} if deleted else set())

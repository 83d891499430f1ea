"""Cross-signing keys and the signatures added to keys afterwards (storage layer)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.canonical import canonical_json
from messenger.storage.tables import CrossSigningKeyRow, CrossSigningSignatureRow

# A signature: (signer user id, signer key id, base64 signature).
Signature = tuple[str, str, str]


async def get_keys(session: AsyncSession, account_id: int) -> dict[str, dict[str, Any]]:
    """usage ("master", "self_signing", "user_signing") -> the key object as uploaded."""
    rows = await session.scalars(select(CrossSigningKeyRow).where(
        CrossSigningKeyRow.account_id == account_id))
    return {r.usage: json.loads(r.json) for r in rows}


async def put_key(session: AsyncSession, account_id: int, usage: str, public_key: str,
                  key: Mapping[str, Any]) -> str | None:
    """Store the account's key of ``usage``; returns the public key it replaced."""
    row = await session.get(CrossSigningKeyRow, (account_id, usage))
    text = canonical_json(key).decode("utf-8")
    if row is None:
        session.add(CrossSigningKeyRow(account_id=account_id, usage=usage,
                                       public_key=public_key, json=text))
        await session.flush()
        return None
    replaced = row.public_key
    row.public_key, row.json = public_key, text
    await session.flush()
    return replaced if replaced != public_key else None


async def add_signatures(session: AsyncSession, account_id: int, target_key_id: str,
                         signatures: Iterable[Signature]) -> None:
    for signer_user_id, signer_key_id, signature in signatures:
        await session.merge(CrossSigningSignatureRow(
            account_id=account_id, target_key_id=target_key_id, signer_user_id=signer_user_id,
            signer_key_id=signer_key_id, signature=signature))
    await session.flush()


async def delete_signatures_on(session: AsyncSession, account_id: int,
                               target_key_id: str) -> None:
    """A replaced key takes the signatures made on it along."""
    await session.execute(delete(CrossSigningSignatureRow).where(
        CrossSigningSignatureRow.account_id == account_id,
        CrossSigningSignatureRow.target_key_id == target_key_id))


async def signatures_on(session: AsyncSession, account_id: int,
                        signers: Iterable[str]) -> dict[str, list[Signature]]:
    """target key id -> the signatures on the account's keys made by ``signers``."""
    rows = await session.scalars(select(CrossSigningSignatureRow).where(
        CrossSigningSignatureRow.account_id == account_id,
        CrossSigningSignatureRow.signer_user_id.in_(list(signers))))
    out: dict[str, list[Signature]] = {}
    for r in rows:
        out.setdefault(r.target_key_id, []).append(
            (r.signer_user_id, r.signer_key_id, r.signature))
    return out

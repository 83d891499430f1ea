"""The MTA-STS policy cache in the school's database (RFC 8461 5.1).

One row per recipient domain: the policy as fetched (in its own file format,
parsed again on read), the TXT ``id`` it belongs to, and when it expires
(fetch time + ``max_age``).  A database rather than memory, because a policy
must survive restarts: that is what protects the *next* connection from a
downgrade attacker who strips the TXT record (RFC 8461 10.1).
"""

from __future__ import annotations

from sqlalchemy import Column, String, Table, Text, delete, insert, select

from directory.db import Database
from directory.schema import Base, UtcDateTime
from federation.mta_sts import CachedPolicy, PolicyError, parse_policy

mta_sts_policies = Table(
    "mta_sts_policies", Base.metadata,
    Column("domain", String(253), primary_key=True),
    Column("policy_id", String(32), nullable=False),
    Column("policy", Text, nullable=False),
    Column("fetched_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)


class DatabasePolicyCache:
    """:class:`federation.mta_sts.PolicyCache` on the ``mta_sts_policies`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, domain: str) -> CachedPolicy | None:
        t = mta_sts_policies
        async with self.db.read() as session:
            row = (await session.execute(
                select(t.c.policy_id, t.c.policy, t.c.fetched_at, t.c.expires_at)
                .where(t.c.domain == domain))).one_or_none()
        if row is None:
            return None
        try:
            policy = parse_policy(row.policy)
        except PolicyError:  # written by an older version with other rules: fetch again
            return None
        return CachedPolicy(domain, row.policy_id, policy, row.fetched_at, row.expires_at)

    async def put(self, entry: CachedPolicy) -> None:
        t = mta_sts_policies
        # Delete + insert in one transaction: portable (no dialect-specific upsert).
        async with self.db.write() as session:
            await session.execute(delete(t).where(t.c.domain == entry.domain))
            await session.execute(insert(t).values(
                domain=entry.domain, policy_id=entry.policy_id,
                policy=entry.policy.to_text(), fetched_at=entry.fetched_at,
                expires_at=entry.expires_at))

"""A hypothesis state machine: the store against a plain model of two mailboxes.

Checked after every step: UIDs strictly increase and are never reused within
a UIDVALIDITY, flags (with the client's keyword spelling) match the model,
MODSEQ rises on every change and stays on no-ops, changes_since returns
exactly the changed and vanished UIDs, quota usage equals the sum of sizes.
IMAP \\Recent claims (RFC 3501 2.3.2) hand every UID to one claimer only, and
a subscription outlives its mailbox until the mailbox is made again or the
name is unsubscribed (RFC 3501 6.3.6).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import event

from directory.db import Database
from mailserver.changes import ChangeFeed
from mailserver.store import FlagMode, MailStore, QuotaExceeded
from tests.mailserver.store.conftest import PUPIL_QUOTA, QUOTAS, make_account
from tests.support.properties import examples

T = TypeVar("T")
SYSTEM = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")}
FLAG_CHOICES = ["\\Seen", "\\seen", "\\Deleted", "\\DELETED", "\\Flagged", "\\Answered",
                "\\Draft", "Work", "work", "$Forwarded", "Hausaufgabe"]
flag_lists = st.lists(st.sampled_from(FLAG_CHOICES), unique=True, max_size=3)
BOXES = ("A", "B")


def encode(flags: list[str]) -> dict[str, str]:
    """Model: lower-case name -> spelling (system flags canonical, keywords first spelling)."""
    out: dict[str, str] = {}
    for f in flags:
        out.setdefault(f.lower(), SYSTEM.get(f.lower(), f))
    return out


def apply(mode: FlagMode, current: dict[str, str], given: dict[str, str]) -> dict[str, str]:
    if mode is FlagMode.REPLACE:
        return dict(current) if current.keys() == given.keys() else dict(given)
    if mode is FlagMode.ADD:
        return {**given, **current}
    return {k: v for k, v in current.items() if k not in given}


@dataclass
class Msg:
    flags: dict[str, str]
    size: int
    modseq: int


@dataclass
class Box:
    id: int
    uidvalidity: int
    highestmodseq: int
    messages: dict[int, Msg] = field(default_factory=dict)
    expunged: dict[int, int] = field(default_factory=dict)  # uid -> modseq
    max_uid: int = 0
    history: list[int] = field(default_factory=list)  # modseqs seen, for changes_since
    recent_from: int = 1  # the first UID no session has claimed as \Recent
    subscribed: bool = True  # CREATE subscribes


class MailStoreMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    store: MailStore
    db: Database

    def run(self, coroutine: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coroutine)  # type: ignore[arg-type]

    @initialize()
    def setup(self) -> None:
        self.account = self.run(make_account(self.db))
        self.boxes: dict[str, Box] = {name: self._create(name) for name in BOXES}
        self.uidvalidities: dict[str, int] = {n: b.uidvalidity for n, b in self.boxes.items()}

    def _create(self, name: str) -> Box:
        info = self.run(self.store.create_mailbox(self.account, name))
        return Box(info.id, info.uidvalidity, info.highestmodseq,
                   history=[info.highestmodseq])

    def _used(self) -> int:
        return sum(m.size for b in self.boxes.values() for m in b.messages.values())

    def _pick(self, box: Box, picks: list[int]) -> list[int]:
        """UIDs chosen by index into the current ones, plus one that does not exist."""
        uids = sorted(box.messages)
        chosen = {uids[i % len(uids)] for i in picks} if uids else set()
        return sorted(chosen | {box.max_uid + 7})

    def _check_step(self, name: str, changed: set[int], vanished: set[int]) -> None:
        """Compare the mailbox with the model after one operation on it."""
        box = self.boxes[name]
        old = box.highestmodseq
        snap = self.run(self.store.select_snapshot(self.account, name))
        assert snap.mailbox.uidvalidity == box.uidvalidity
        if changed or vanished:
            assert snap.mailbox.highestmodseq > old
        else:
            assert snap.mailbox.highestmodseq == old  # no-ops leave MODSEQ alone
        got = {s.uid: s for s in snap.messages}
        assert [s.uid for s in snap.messages] == sorted(got)
        assert set(got) == set(box.messages)
        for uid, state in got.items():
            msg = box.messages[uid]
            assert state.flags == frozenset(msg.flags.values())
            if uid in changed:
                assert old < state.modseq <= snap.mailbox.highestmodseq
                msg.modseq = state.modseq
            else:
                assert state.modseq == msg.modseq
        for uid in vanished:
            box.expunged[uid] = snap.mailbox.highestmodseq
        box.highestmodseq = snap.mailbox.highestmodseq
        box.history.append(box.highestmodseq)
        changes = self.run(self.store.changes_since(box.id, old))
        assert {c.uid for c in changes.changed} == changed
        assert set(changes.vanished) == vanished

    def _new_uids(self, name: str, uids: list[int]) -> None:
        box = self.boxes[name]
        assert uids == sorted(uids) and uids[0] > box.max_uid  # never reused
        box.max_uid = uids[-1]

    @rule(name=st.sampled_from(BOXES), size=st.integers(1, 4000), flags=flag_lists)
    def append(self, name: str, size: int, flags: list[str]) -> None:
        body = b"m" * size
        if self._used() + size > PUPIL_QUOTA:
            with pytest.raises(QuotaExceeded):
                self.run(self.store.append(self.account, name, body, flags))
            self._check_step(name, set(), set())
            return
        result = self.run(self.store.append(self.account, name, body, flags))
        box = self.boxes[name]
        assert result.uidvalidity == box.uidvalidity and result.mailbox_id == box.id
        self._new_uids(name, [result.uid])
        box.messages[result.uid] = Msg(encode(flags), size, 0)
        self._check_step(name, {result.uid}, set())

    @rule(name=st.sampled_from(BOXES), selected=st.sampled_from(BOXES))
    def append_claiming_recent(self, name: str, selected: str) -> None:
        """APPEND by an IMAP4rev1 session with ``selected`` selected: into
        that mailbox, the same transaction claims every UID not yet recent
        up to the new one (RFC 3501 2.3.2, 6.3.11); elsewhere it claims nothing."""
        body = b"r" * 100
        if self._used() + len(body) > PUPIL_QUOTA:
            return
        box = self.boxes[name]
        result, first = self.run(self.store.append_claiming(
            self.account, name, body, (), claim_recent_in=self.boxes[selected].id))
        self._new_uids(name, [result.uid])
        box.messages[result.uid] = Msg(encode([]), len(body), 0)
        self._check_step(name, {result.uid}, set())
        if name == selected:
            assert first == box.recent_from  # nobody else had these
            box.recent_from = max(box.recent_from, result.uid + 1)
        else:
            assert first is None
        assert self.run(self.store.recent_count(box.id)) == sum(
            1 for uid in box.messages if uid >= box.recent_from)

    @rule(name=st.sampled_from(BOXES), picks=st.lists(st.integers(0, 50), max_size=4),
          mode=st.sampled_from(FlagMode), flags=flag_lists,
          since=st.one_of(st.none(), st.integers(0, 60)))
    def store_flags(self, name: str, picks: list[int], mode: FlagMode, flags: list[str],
                    since: int | None) -> None:
        box = self.boxes[name]
        uids = self._pick(box, picks)
        unchanged_since = None if since is None else box.history[since % len(box.history)]
        given = encode(flags)
        changed: set[int] = set()
        modified: list[int] = []
        for uid in uids:
            msg = box.messages.get(uid)
            if msg is None:
                continue
            if unchanged_since is not None and msg.modseq > unchanged_since:
                modified.append(uid)
                continue
            new = apply(mode, msg.flags, given)
            if new.keys() != msg.flags.keys():
                msg.flags = new
                changed.add(uid)
        result = self.run(self.store.store_flags(box.id, uids, mode, flags, unchanged_since))
        assert result.modified == modified
        assert {s.uid for s in result.updated} == changed
        for state in result.updated:
            assert state.flags == frozenset(box.messages[state.uid].flags.values())
        self._check_step(name, changed, set())

    def _transfer(self, source: str, picks: list[int], *, move: bool) -> None:
        dest = "B" if source == "A" else "A"
        src_box, dst_box = self.boxes[source], self.boxes[dest]
        uids = self._pick(src_box, picks)
        present = [u for u in uids if u in src_box.messages]
        size = sum(src_box.messages[u].size for u in present)
        call = self.store.move if move else self.store.copy
        if not move and present and self._used() + size > PUPIL_QUOTA:
            with pytest.raises(QuotaExceeded):
                self.run(call(src_box.id, uids, dst_box.id))
            self._check_step(dest, set(), set())
            return
        result = self.run(call(src_box.id, uids, dst_box.id))
        assert result.uidvalidity == dst_box.uidvalidity
        assert [s for s, _ in result.pairs] == present
        new = [d for _, d in result.pairs]
        if new:
            self._new_uids(dest, new)
        for s, d in result.pairs:
            original = src_box.messages[s]
            dst_box.messages[d] = Msg(dict(original.flags), original.size, 0)
            if move:
                del src_box.messages[s]
        self._check_step(dest, set(new), set())
        if move:
            self._check_step(source, set(), set(present))

    @rule(source=st.sampled_from(BOXES), picks=st.lists(st.integers(0, 50), max_size=4))
    def copy(self, source: str, picks: list[int]) -> None:
        self._transfer(source, picks, move=False)

    @rule(source=st.sampled_from(BOXES), picks=st.lists(st.integers(0, 50), max_size=4))
    def move(self, source: str, picks: list[int]) -> None:
        self._transfer(source, picks, move=True)

    @rule(name=st.sampled_from(BOXES),
          picks=st.one_of(st.none(), st.lists(st.integers(0, 50), max_size=4)))
    def expunge(self, name: str, picks: list[int] | None) -> None:
        box = self.boxes[name]
        uids = None if picks is None else self._pick(box, picks)
        candidates = box.messages if uids is None else [u for u in uids if u in box.messages]
        expected = sorted(u for u in candidates if "\\deleted" in box.messages[u].flags)
        assert self.run(self.store.expunge(box.id, uids)) == expected
        for uid in expected:
            del box.messages[uid]
        self._check_step(name, set(), set(expected))

    @rule(name=st.sampled_from(BOXES))
    def delete_and_recreate(self, name: str) -> None:
        self.run(self.store.delete_mailbox(self.account, name))
        self.boxes[name] = self._create(name)
        # a re-created folder must never look like the old one to a caching client
        assert self.boxes[name].uidvalidity > self.uidvalidities[name]
        self.uidvalidities[name] = self.boxes[name].uidvalidity

    @rule(name=st.sampled_from(BOXES), pick=st.integers(0, 100))
    def changes_since_old_modseq(self, name: str, pick: int) -> None:
        box = self.boxes[name]
        since = box.history[pick % len(box.history)]
        changes = self.run(self.store.changes_since(box.id, since))
        assert [c.uid for c in changes.changed] == sorted(
            u for u, m in box.messages.items() if m.modseq > since)
        assert changes.vanished == sorted(u for u, m in box.expunged.items() if m > since)
        assert changes.highestmodseq == box.highestmodseq

    @rule(name=st.sampled_from(BOXES), claim=st.booleans(), beyond=st.integers(0, 3))
    def claim_recent(self, name: str, claim: bool, beyond: int) -> None:
        box = self.boxes[name]
        up_to = box.max_uid + 1 + beyond
        first = self.run(self.store.claim_recent(box.id, up_to, claim=claim))
        assert first == box.recent_from  # nobody else had these
        if claim:
            box.recent_from = max(box.recent_from, up_to)
        assert self.run(self.store.recent_count(box.id)) == sum(
            1 for uid in box.messages if uid >= box.recent_from)

    @rule(name=st.sampled_from(BOXES), subscribed=st.booleans())
    def subscribe(self, name: str, subscribed: bool) -> None:
        self.run(self.store.set_subscribed(self.account, name, subscribed))
        self.boxes[name].subscribed = subscribed

    @rule(name=st.sampled_from(BOXES), unsubscribe_first=st.booleans())
    def subscription_outlives_the_mailbox(self, name: str, unsubscribe_first: bool) -> None:
        box = self.boxes[name]
        self.run(self.store.delete_mailbox(self.account, name))
        orphans = self.run(self.store.orphan_subscriptions(self.account))
        assert (name in orphans) == box.subscribed
        if unsubscribe_first and box.subscribed:
            self.run(self.store.set_subscribed(self.account, name, False))
            assert name not in self.run(self.store.orphan_subscriptions(self.account))
        self.boxes[name] = self._create(name)
        assert self.boxes[name].uidvalidity > self.uidvalidities[name]
        self.uidvalidities[name] = self.boxes[name].uidvalidity
        assert name not in self.run(self.store.orphan_subscriptions(self.account))

    @invariant()
    def subscriptions_match(self) -> None:
        if hasattr(self, "boxes"):
            listed = {status.mailbox.name: status.mailbox.subscribed
                      for status in self.run(self.store.list_mailboxes(self.account))}
            for name, box in self.boxes.items():
                assert listed[name] == box.subscribed

    @invariant()
    def quota_is_the_sum_of_sizes(self) -> None:
        if hasattr(self, "boxes"):
            quota = self.run(self.store.quota(self.account))
            assert quota.used == self._used() and quota.limit == PUPIL_QUOTA


def without_fsync(db: Database) -> None:
    """Durability is not under test here; skipping fsync keeps shrinking fast."""
    for engine in {db.write_engine, db.read_engine}:
        @event.listens_for(engine.sync_engine, "connect")
        def _fast(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=OFF" if db.is_sqlite
                           else "SET synchronous_commit TO OFF")
            cursor.close()


@pytest.mark.timeout(900)  # only a failing run (shrinking) comes near this
@pytest.mark.hypothesis  # a state machine: `make properties` runs it too
def test_store_matches_model(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    db = Database(database_url)
    without_fsync(db)
    MailStoreMachine.loop = loop
    MailStoreMachine.db = db
    MailStoreMachine.store = MailStore(db, QUOTAS, ChangeFeed())
    try:
        run_state_machine_as_test(MailStoreMachine, settings=settings(
            max_examples=examples(30), stateful_step_count=15, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    finally:
        loop.run_until_complete(db.dispose())
        loop.close()

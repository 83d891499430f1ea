r"""Hypothesis stateful test: two IMAP sessions on one mailbox over loopback
TLS, random APPEND / STORE / EXPUNGE / NOOP, checked against a model of the
mailbox. Each client keeps its own sequence-number -> UID list, updated
only from the server's untagged EXISTS / EXPUNGE / FETCH, exactly as a real
client must (RFC 9051 5.5, 7.4.1); every FETCH must name the UID the client
has at that number, and after a NOOP a client's view equals the mailbox.
\Recent (RFC 3501 2.3.2) belongs to exactly one session, the one that
learnt of the message first (here the appending one); a keyword is never
shown in a FETCH before an untagged FLAGS named it (RFC 3501 7.2.6)."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.mailserver.imap.session.helpers import (
    PASSWORD,
    client_tls,
    imap_ports,
    imap_school,
    imap_settings,
    make_account,
    sample_message,
)
from tests.support.properties import examples

FLAGS = ("\\Flagged", "\\Deleted", "\\Seen", "$Wichtig", "Hausaufgabe")
_FETCH = re.compile(rb"^\* (\d+) FETCH \((.*)\)$")


class SyncClient:
    """Blocking IMAP client that tracks its own message numbers."""

    def __init__(self, port: int, context: ssl.SSLContext, login: str) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock = context.wrap_socket(raw)
        self.file = self.sock.makefile("rb")
        self.counter = 0
        self.uids: list[int] = []
        self.flags: dict[int, frozenset[str]] = {}
        self.announced: set[str] = set()  # keywords named by untagged FLAGS
        self.file.readline()
        assert self.command(f'LOGIN {login} "{PASSWORD}"')[0] == "OK"
        assert self.command("SELECT INBOX")[0] == "OK"

    def command(self, text: str, literal: bytes | None = None) -> tuple[str, str]:
        self.counter += 1
        tag = f"s{self.counter}"
        if literal is None:
            self.sock.sendall(f"{tag} {text}\r\n".encode())
        else:  # LITERAL+ (RFC 7888): no continuation round trip
            self.sock.sendall(f"{tag} {text} {{{len(literal)}+}}\r\n".encode() + literal
                              + b"\r\n")
        while True:
            line = self.file.readline().rstrip(b"\r\n")
            if line.startswith(tag.encode() + b" "):
                words = line.decode().split(" ", 2)
                self._catch_up()
                return words[1], words[2] if len(words) > 2 else ""
            self._untagged(line)

    def _untagged(self, line: bytes) -> None:
        parts = line.split(b" ")
        if line.startswith(b"* FLAGS ("):
            self.announced = set(line[9:-1].decode().split())
        elif len(parts) >= 3 and parts[2] == b"EXISTS":
            count = int(parts[1])
            assert count >= len(self.uids), f"EXISTS shrank: {line!r}"
            self.uids.extend([0] * (count - len(self.uids)))  # UIDs learnt below
        elif len(parts) >= 3 and parts[2] == b"EXPUNGE":
            number = int(parts[1])
            assert 1 <= number <= len(self.uids), f"EXPUNGE out of range: {line!r}"
            uid = self.uids.pop(number - 1)
            self.flags.pop(uid, None)
        elif match := _FETCH.match(line):
            number = int(match.group(1))
            assert 1 <= number <= len(self.uids), f"FETCH out of range: {line!r}"
            body = match.group(2).decode()
            uid_match = re.search(r"UID (\d+)", body)
            if uid_match:
                uid = int(uid_match.group(1))
                if self.uids[number - 1] == 0:
                    self.uids[number - 1] = uid
                assert self.uids[number - 1] == uid, f"number {number} is not UID {uid}"
            flags_match = re.search(r"FLAGS \(([^)]*)\)", body)
            if flags_match:
                flags = frozenset(flags_match.group(1).split())
                unknown = {f for f in flags if not f.startswith("\\")} - self.announced
                assert not unknown, f"keyword {unknown} in FETCH before FLAGS named it"
                self.flags[self.uids[number - 1]] = flags

    def _catch_up(self) -> None:
        """Learn the UIDs and flags of messages announced by EXISTS."""
        if 0 in self.uids:
            first = self.uids.index(0) + 1
            self.command(f"FETCH {first}:{len(self.uids)} (UID FLAGS)")

    def close(self) -> None:
        try:
            self.command("LOGOUT")
        except OSError:
            pass
        self.sock.close()


class BackgroundSchool:
    """A school served from an event loop in another thread."""

    def __init__(self, settings_: object) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._context = imap_school(settings_)  # type: ignore[arg-type]
        self.school = self.run(self._context.__aenter__())
        self.accounts = 0

    def run(self, coroutine: object) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)  # type: ignore

    def new_login(self) -> str:
        self.accounts += 1
        login = f"user{self.accounts}"
        self.run(make_account(self.school, login))  # type: ignore[arg-type]
        return login

    def close(self) -> None:
        self.run(self._context.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class TwoSessions(RuleBasedStateMachine):
    env: BackgroundSchool
    context: ssl.SSLContext

    def __init__(self) -> None:
        super().__init__()
        login = self.env.new_login()
        port = imap_ports(self.env.school)[1]  # type: ignore[arg-type]
        self.clients = [SyncClient(port, self.context, login) for _ in range(2)]
        self.mailbox: dict[int, frozenset[str]] = {}  # the truth: uid -> flags
        self.recent_to: dict[int, int] = {}  # uid -> the session it is \Recent to

    def teardown(self) -> None:
        for client in self.clients:
            client.close()

    @rule(who=st.integers(0, 1), flags=st.sets(st.sampled_from(FLAGS), max_size=2))
    def append(self, who: int, flags: set[str]) -> None:
        client = self.clients[who]
        status, text = client.command(f"APPEND INBOX ({' '.join(sorted(flags))})",
                                      literal=sample_message(f"n{len(self.mailbox)}"))
        assert status == "OK", text
        uid = int(re.search(r"APPENDUID \d+ (\d+)", text).group(1))  # type: ignore[union-attr]
        self.mailbox[uid] = frozenset(flags)
        self.recent_to[uid] = who

    @rule(who=st.integers(0, 1), data=st.data(), flag=st.sampled_from(FLAGS),
          add=st.booleans())
    def store(self, who: int, data: st.DataObject, flag: str, add: bool) -> None:
        client = self.clients[who]
        if not client.uids:
            return
        number = data.draw(st.integers(1, len(client.uids)))
        uid = client.uids[number - 1]
        status, _ = client.command(f"STORE {number} {'+' if add else '-'}FLAGS ({flag})")
        assert status == "OK"
        if uid in self.mailbox:  # already expunged by the other session: no effect
            self.mailbox[uid] = (self.mailbox[uid] | {flag} if add
                                 else self.mailbox[uid] - {flag})

    @rule(who=st.integers(0, 1))
    def expunge(self, who: int) -> None:
        assert self.clients[who].command("EXPUNGE")[0] == "OK"
        self.mailbox = {u: f for u, f in self.mailbox.items() if "\\Deleted" not in f}
        self._check_synced(who)

    @rule(who=st.integers(0, 1))
    def noop(self, who: int) -> None:
        assert self.clients[who].command("NOOP")[0] == "OK"
        self._check_synced(who)

    def _check_synced(self, who: int) -> None:
        client = self.clients[who]
        assert client.uids == sorted(self.mailbox)
        expected = {u: f | {"\\Recent"} if self.recent_to.get(u) == who else f
                    for u, f in self.mailbox.items()}
        assert {u: client.flags.get(u) for u in client.uids} == expected

    @invariant()
    def numbers_follow_uid_order(self) -> None:
        # Message numbers ascend with UIDs (RFC 9051 2.3.1.1); a UID a client
        # still shows is in the mailbox or expunged since its last NOOP.
        for client in self.clients:
            assert client.uids == sorted(client.uids)
            assert len(set(client.uids)) == len(client.uids)


def test_two_sessions_agree_with_the_model(tmp_path: Path, database_url: str) -> None:
    config = imap_settings(tmp_path / "school", database_url)
    env = BackgroundSchool(config)
    try:
        TwoSessions.env = env
        TwoSessions.context = client_tls(config)
        run_state_machine_as_test(TwoSessions, settings=settings(
            max_examples=examples(20), stateful_step_count=15, deadline=None,
            suppress_health_check=list(HealthCheck)))
    finally:
        env.close()


pytestmark = [pytest.mark.timeout(300), pytest.mark.hypothesis]

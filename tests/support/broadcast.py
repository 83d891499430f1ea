"""Two in-memory broadcasts wired to each other: two "processes" in one test.

What one sends, the other's listeners receive at once (never the sender's);
``lose`` drops messages (a NOTIFY lost while a listener reconnects) and
``reconnect`` runs the catch-ups, as ``PostgresBroadcast`` does.
"""

from __future__ import annotations

from directory.broadcast import MAX_PAYLOAD, CatchUp, Receiver


class PairedBroadcast:
    shared = True

    def __init__(self) -> None:
        self.peer: PairedBroadcast | None = None
        self.receivers: dict[str, list[Receiver]] = {}
        self.catch_ups: list[CatchUp] = []
        self.lose = False
        self.sent: list[tuple[str, str]] = []

    @classmethod
    def pair(cls) -> tuple[PairedBroadcast, PairedBroadcast]:
        one, two = cls(), cls()
        one.peer, two.peer = two, one
        return one, two

    def send(self, channel: str, payload: str) -> None:
        assert len(payload.encode()) <= MAX_PAYLOAD
        self.sent.append((channel, payload))
        if self.lose or self.peer is None:
            return
        for receive in self.peer.receivers.get(channel, []):
            receive(payload)

    def listen(self, channel: str, receive: Receiver) -> None:
        self.receivers.setdefault(channel, []).append(receive)

    def on_reconnect(self, catch_up: CatchUp) -> None:
        self.catch_ups.append(catch_up)

    async def reconnect(self) -> None:
        for catch_up in self.catch_ups:
            await catch_up()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

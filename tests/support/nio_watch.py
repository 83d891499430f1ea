"""A matrix-nio client with end-to-end encryption, synced the way ``sync_forever``
would (keys uploaded, queried and claimed, to-device messages sent), remembering
the decrypted messages, typing and receipts it saw: for the federation tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    MegolmEvent,
    ReceiptEvent,
    RoomMessageText,
    SyncResponse,
    TypingNoticeEvent,
)


class Watcher:
    """A nio client synced the way sync_forever would, remembering what it saw."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.texts: list[tuple[str, str]] = []  # (sender, body) of decrypted messages
        self.undecryptable = 0
        self.typing: list[list[str]] = []
        self.receipts: list[tuple[str, str]] = []  # (user, event id)

    async def sync(self, timeout: int = 0) -> None:
        c = self.client
        response = await c.sync(timeout=timeout)
        assert isinstance(response, SyncResponse), response
        for room in response.rooms.join.values():
            for event in room.timeline.events:
                if isinstance(event, RoomMessageText):
                    self.texts.append((event.sender, event.body))
                elif isinstance(event, MegolmEvent):
                    self.undecryptable += 1
            for event in room.ephemeral:
                if isinstance(event, TypingNoticeEvent):
                    self.typing.append(event.users)
                elif isinstance(event, ReceiptEvent):
                    self.receipts += [(r.user_id, r.event_id) for r in event.receipts]
        if c.should_upload_keys:
            await c.keys_upload()
        if c.should_query_keys:
            await c.keys_query()
        if c.should_claim_keys:
            await c.keys_claim(c.get_users_for_key_claiming())
        await c.send_to_device_messages()

    async def until(self, check: Callable[[Watcher], bool], timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check(self):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.client.user_id}: not reached in time")
            await self.sync(500)


async def login(base_url: str, user_id: str, password: str, store: Path,
                made: list[AsyncClient]) -> Watcher:
    store.mkdir(parents=True, exist_ok=True)
    client = AsyncClient(base_url, user_id, store_path=str(store),
                         config=AsyncClientConfig(encryption_enabled=True,
                                                  store_sync_tokens=False))
    made.append(client)
    assert isinstance(await client.login(password, device_name="nio"), LoginResponse)
    watcher = Watcher(client)
    await watcher.sync()
    return watcher

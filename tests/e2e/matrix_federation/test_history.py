"""History from before a join across two schools (Server-Server API "Backfilling"):
ben at school B joins anna's room at A after she wrote in it; paging back with
/messages at B fetches what came before his join from A (GET /backfill), page by
page, in order, once; where the room's history visibility is "joined", nothing
from before his join is shown."""

from __future__ import annotations

from nio import AsyncClient, JoinResponse, RoomCreateResponse, RoomMessagesResponse

from tests.e2e.matrix_federation.conftest import ChatSchool
from tests.e2e.matrix_federation.test_rooms import login, until


async def history_then_join(a: ChatSchool, b: ChatSchool, clients: list[AsyncClient],
                            visibility: str, count: int) -> tuple[AsyncClient, str]:
    anna = await login(a, "anna", clients)
    ben = await login(b, "ben", clients)
    created = await anna.room_create(name="Vorgeschichte", invite=[b.user("ben")],
                                     initial_state=[{
                                         "type": "m.room.history_visibility",
                                         "state_key": "",
                                         "content": {"history_visibility": visibility}}])
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    for n in range(count):
        await anna.room_send(room_id, "m.room.message", {"msgtype": "m.text",
                                                         "body": f"vorher {n}"})
    await until(ben, lambda c: room_id in c.invited_rooms)
    assert isinstance(await ben.join(room_id), JoinResponse)
    await until(ben, lambda c: room_id in c.rooms)
    return ben, room_id


async def page_back(client: AsyncClient, room_id: str, limit: int) -> list[str]:
    """Every message body /messages gives paging back from now, oldest first."""
    bodies: list[str] = []
    token = client.next_batch
    for _ in range(100):
        page = await client.room_messages(room_id, start=token, limit=limit)
        assert isinstance(page, RoomMessagesResponse), page
        bodies += [e.body for e in page.chunk if hasattr(e, "body")]
        if not page.end or not page.chunk:
            break
        token = page.end
    return bodies[::-1]


async def test_paging_back_fetches_history_from_before_the_join(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    ben, room_id = await history_then_join(a, b, clients, "shared", 25)
    seen = await page_back(ben, room_id, 10)
    assert seen == [f"vorher {n}" for n in range(25)], seen
    # Once fetched it stays: paging again asks nobody and gives the same.
    assert await page_back(ben, room_id, 7) == seen


async def test_joined_only_history_is_not_fetched(chat_schools: dict[str, ChatSchool],
                                                  clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    ben, room_id = await history_then_join(a, b, clients, "joined", 5)
    assert await page_back(ben, room_id, 10) == []

"""Room aliases between Synapse and a Schulhof school (Server-Server API "Room
aliases", ``GET /_matrix/federation/v1/query/directory``): a Synapse user joins
``#name:a.test`` and a Schulhof user joins ``#name:syn.test``, each server asking
the other which room the alias names, with matrix-nio clients on both sides."""

from __future__ import annotations

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    RoomCreateResponse,
    RoomResolveAliasResponse,
    RoomVisibility,
)

from tests.e2e.matrix_synapse.conftest import (
    ON_SHARED_LOOP,
    SYNAPSE_NAME,
    SYNAPSE_TEST_TIMEOUT,
    Interop,
)
from tests.e2e.matrix_synapse.test_rooms import chat, nio_login, until

pytestmark = [pytest.mark.synapse, pytest.mark.timeout(SYNAPSE_TEST_TIMEOUT), ON_SHARED_LOOP]


async def test_aliases_resolve_and_join_both_ways(interop: Interop,
                                                  clients: list[AsyncClient]) -> None:
    a = interop.schools["a"]
    await interop.synapse_user("dora", "Dora Synapse")
    lehrer = await nio_login(a.matrix.base_url, interop.teacher_id(), clients)
    dora = await nio_login(interop.synapse.client_url, interop.synapse_id("dora"), clients)

    # A room of the school, joined from Synapse by its alias.
    created = await lehrer.room_create(name="Schul-Alias", alias=interop.alias("schulalias"),
                                       visibility=RoomVisibility.public)
    assert isinstance(created, RoomCreateResponse), created
    resolved = await dora.room_resolve_alias(f"#{interop.alias('schulalias')}:a.test")
    assert isinstance(resolved, RoomResolveAliasResponse), resolved
    assert resolved.room_id == created.room_id and "a.test" in resolved.servers
    joined = await dora.join(f"#{interop.alias('schulalias')}:a.test")
    assert isinstance(joined, JoinResponse), joined
    await until(lehrer, lambda c: created.room_id in c.rooms
                and dora.user_id in c.rooms[created.room_id].users)
    await chat(lehrer, dora, created.room_id)

    # A room of Synapse's, joined from the school by its alias.
    theirs = await dora.room_create(name="Synapse-Alias", alias=interop.alias("synalias"),
                                    visibility=RoomVisibility.public)
    assert isinstance(theirs, RoomCreateResponse), theirs
    resolved = await lehrer.room_resolve_alias(f"#{interop.alias('synalias')}:{SYNAPSE_NAME}")
    assert isinstance(resolved, RoomResolveAliasResponse), resolved
    assert resolved.room_id == theirs.room_id and SYNAPSE_NAME in resolved.servers
    joined = await lehrer.join(f"#{interop.alias('synalias')}:{SYNAPSE_NAME}")
    assert isinstance(joined, JoinResponse), joined
    assert joined.room_id == theirs.room_id
    await until(lehrer, lambda c: theirs.room_id in c.rooms)
    await chat(dora, lehrer, theirs.room_id)

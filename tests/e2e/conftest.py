"""Fixtures shared by the end-to-end tests (and tests/e2e/matrix_federation, matrix_synapse)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nio import AsyncClient

from messenger.server import MatrixServer
from tests.support.bridge import nio_client


@pytest.fixture
async def clients() -> AsyncIterator[list[AsyncClient]]:
    """The matrix-nio clients a test makes: it appends each; they are closed after it."""
    made: list[AsyncClient] = []
    yield made
    for client in made:
        await client.close()


@pytest.fixture
async def pupil(server: MatrixServer) -> AsyncIterator[AsyncClient]:
    """anna's matrix-nio client, logged in to the test module's ``server`` (the bridge
    tests: tests/support/bridge.py)."""
    client = await nio_client(server, "anna")
    yield client
    await client.close()

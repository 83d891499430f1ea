"""free_port (tests/support/schools.py) when two pytest runs share the machine.

Two engineers' runs walk the same port slices; a port one run has handed out
but whose server has not bound it yet must not pass the other run's check.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import schools

REPO = Path(__file__).resolve().parents[1]
# Another run whose walk has come to ``port``: it asks for one port from there on.
OTHER_RUN = """
import itertools, sys
from tests.support import schools
port = int(sys.argv[1])
schools._cursor = itertools.cycle([port, port + 1, port + 2])
print(schools.free_port("127.0.0.1"))
"""


def other_run_free_port(starting_at: int) -> int:
    out = subprocess.run([sys.executable, "-c", OTHER_RUN, str(starting_at)], cwd=REPO,
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return int(out)


def test_a_port_handed_out_is_not_handed_to_another_run_before_its_server_binds() -> None:
    port = schools.free_port()
    assert other_run_free_port(port) != port


def test_the_server_can_bind_the_port_it_was_handed() -> None:
    async def serve_twice(port: int) -> None:
        for _ in range(2):  # a restart on the same port, too
            server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            server.close()
            await server.wait_closed()

    port = schools.free_port()
    asyncio.run(serve_twice(port))
    # While it is held and nothing listens, a connection is refused.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        monkeypatch.setattr(schools, "_cursor", itertools.cycle([port]))
        with pytest.raises(RuntimeError, match="no free port"):
            schools.free_port()


def test_fast_tests_never_run_out_of_ports() -> None:
    # More ports than this worker's slice of the range, handed out at once: the
    # oldest are let go (HOLD_MAX) before the slice is all held.
    for _ in range(2 * (schools._PORTS_HIGH - schools._PORTS_LOW)):
        schools.free_port()
    assert len(schools._held) <= schools.HOLD_MAX

"""Element Web's engine, matrix-js-sdk from the npm registry, against a running school.

The node tests live in tests/node (``node --test``, package-lock.json pinned);
this wrapper starts a school, makes the accounts the node tests log in with and
runs them with the homeserver URL in the environment.  The school serves plain
http on loopback in tests, so no CA trust is needed.  Skipped only when node is
not installed; ``make test`` runs ``npm ci`` first, and a missing node_modules
is installed here from the registry.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from conf.app import School
from directory.model import Role
from messenger.server import MatrixServer

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
PASSWORD = "correct horse battery"
USERS = 8  # test files take users by index: see tests/node/README.md
NODE_TIMEOUT = 240.0


async def _run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=NODE_DIR, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), NODE_TIMEOUT)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        return -1, out.decode("utf-8", "replace") + "\n(timed out)"
    return process.returncode or 0, out.decode("utf-8", "replace")


async def test_matrix_js_sdk(running_school: School) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not installed: the matrix-js-sdk tests (tests/node) need them")
    if not (NODE_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        code, out = await _run(npm, "ci", "--no-audit", "--no-fund")
        assert code == 0, f"npm ci failed:\n{out}"
    server = next(s for s in running_school.services if isinstance(s, MatrixServer))
    domain = server.server_name
    users = []
    for n in range(USERS):
        login = f"jsnutzer{n}"
        await running_school.directory.create_account(
            role=Role.TEACHER, login=login, display_name=f"JS Nutzer {n}", password=PASSWORD)
        users.append({"user_id": f"@{login}:{domain}", "password": PASSWORD})
    env = {**os.environ, "SCHULHOF_MATRIX_URL": server.base_url,
           "SCHULHOF_TEST_USERS": json.dumps(users)}
    # One test file at a time: they share the school, and the machine is small.
    code, out = await _run(node, "--test", "--test-concurrency=1", "--test-force-exit", env=env)
    print(out)
    assert code == 0, f"node --test failed:\n{out}"

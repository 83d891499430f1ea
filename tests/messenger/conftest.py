"""The messenger's domain tests share one way to build an unstarted Matrix server."""

from __future__ import annotations

import pytest

from conf.app import School
from messenger.server import MatrixServer
from tests.support.matrix_in_process import matrix_server


@pytest.fixture
async def server(school: School) -> MatrixServer:
    return matrix_server(school)

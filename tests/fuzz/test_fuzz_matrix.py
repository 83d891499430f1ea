"""Fuzz the Matrix listeners (client API over HTTP, federation over HTTPS) of a real server."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from conf.app import School
from conf.wiring import matrix as matrix_wiring
from messenger.api.federation import build_federation_app
from messenger.federation_listener import FederationListener
from messenger.server import MatrixServer
from tests.fuzz.conftest import FUZZ_LOGINS, PASSWORD, campaign, timeout_for_budget
from tests.fuzz.matrix_cases import MatrixSession, MatrixWorld, RawTarget, routes_of, run_case
from tests.support.serve_process import ServeProcess

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(timeout_for_budget())]


async def endpoint_apps(server: ServeProcess) -> dict[str, Any]:
    """The aiohttp applications exactly as ``serve`` builds them (not started here)."""
    school = await School.open(server.settings, migrate=False)
    try:
        apps: dict[str, Any] = {}
        for service in matrix_wiring.build(school):
            if isinstance(service, MatrixServer):
                apps["client"] = service.app()
            elif isinstance(service, FederationListener):
                apps["federation"] = build_federation_app(service.context)
                await service.client.close()
        return apps
    finally:
        await school.close()


async def test_matrix_survives_fuzzing(fuzz_server: ServeProcess) -> None:
    settings = fuzz_server.settings
    listen = settings.listen
    routes = routes_of(await endpoint_apps(fuzz_server))
    assert len(routes) > 50, routes
    tls = ssl.create_default_context(cafile=str(settings.path(settings.tls.certificate)))
    tls.check_hostname = False
    run = campaign("matrix", fuzz_server)
    world = MatrixWorld(
        client_base=f"http://{listen.bind}:{listen.matrix}",
        federation_base=f"https://{listen.bind}:{listen.federation}",
        domain=settings.school.domain, routes=routes,
        sessions=[MatrixSession(login, PASSWORD) for login in FUZZ_LOGINS],
        tls=tls, hang_seconds=run.hang_seconds)
    await world.setup()
    raw = RawTarget(listen.bind, listen.matrix)
    print(f"matrix: {len(routes)} routes")
    await run.run(lambda rng, transcript: run_case(world, raw, rng, transcript))
    print(run.summary())
    assert not run.findings, run.report()
    assert run.cases > 0

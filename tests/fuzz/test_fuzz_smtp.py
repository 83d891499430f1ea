"""Fuzz the SMTP listeners (MX, submission, submissions) of a real server."""

from __future__ import annotations

import ssl

import pytest

from tests.fuzz.conftest import FUZZ_LOGINS, PASSWORD, campaign, timeout_for_budget
from tests.fuzz.smtp_cases import SmtpTarget, run_case
from tests.support.serve_process import ServeProcess

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(timeout_for_budget())]


async def test_smtp_survives_fuzzing(fuzz_server: ServeProcess) -> None:
    settings = fuzz_server.settings
    tls = ssl.create_default_context(cafile=str(settings.path(settings.tls.certificate)))
    tls.check_hostname = False
    run = campaign("smtp", fuzz_server)
    target = SmtpTarget(host=settings.listen.bind, mx=settings.listen.smtp,
                        submission=settings.listen.submission,
                        submissions=settings.listen.submissions, tls=tls,
                        logins=[(login, PASSWORD) for login in FUZZ_LOGINS],
                        hang_seconds=run.hang_seconds)
    await run.run(lambda rng, transcript: run_case(target, rng, transcript))
    print(run.summary())
    assert not run.findings, run.report()
    assert run.cases > 0

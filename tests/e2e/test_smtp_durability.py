"""A 250 means stored: SIGKILL ``schulhof serve`` while clients send, restart, count.

Several aiosmtplib clients send in parallel to the MX listener of a real
``schulhof --config FILE serve`` process; the server is killed with SIGKILL
in mid-stream, restarted, and every message that got a 250 must be in its
mailbox exactly once (messages are identified by a unique X-Test-Id header).
Messages that did not get a 250 may or may not be there (RFC 5321 6.1 lets
the client retry), but never twice.
"""

from __future__ import annotations

import asyncio
import collections
import email
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiosmtplib
import pytest

from conf.app import School
from conf.settings import Settings, render_settings_toml
from directory.model import Role
from mailserver.store import MailboxNotFound
from tests.support.schools import make_settings
from tests.support.smtp_clients import client_tls_context, make_message

REPO = Path(__file__).resolve().parents[2]
RECIPIENTS = ("anna", "ben", "carla")
CLIENTS = 6


def start_server(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHULHOF_")}
    return subprocess.Popen(
        [sys.executable, "-m", "conf.cli", "--config", str(config), "serve"], cwd=REPO,
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=log.open("ab"))


async def wait_listening(settings: Settings, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise AssertionError(f"server exited:\n{log.read_text()}")
        if "service=smtp-mx" in log.read_text():
            try:
                _r, writer = await asyncio.open_connection(settings.listen.bind,
                                                           settings.listen.smtp)
            except OSError:
                pass
            else:
                writer.close()
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"server did not start:\n{log.read_text()}")


async def sender(settings: Settings, number: int, acked: list[tuple[str, str]],
                 stop: asyncio.Event) -> None:
    """Send until the server goes away; remember (login, id) for every 250."""
    sequence = 0
    while not stop.is_set():
        smtp = aiosmtplib.SMTP(hostname=settings.listen.bind, port=settings.listen.smtp,
                               start_tls=True, tls_context=client_tls_context(settings),
                               timeout=10)
        try:
            await smtp.connect()
            while not stop.is_set():
                login = RECIPIENTS[(number + sequence) % len(RECIPIENTS)]
                sequence += 1
                marker, message = make_message(
                    sender=f"client{number}@outside.example", to=[f"{login}@schule.test"],
                    body=("x" * 70 + "\r\n") * 30)
                await smtp.sendmail(f"client{number}@outside.example",
                                    [f"{login}@schule.test"], message)
                acked.append((login, marker))  # sendmail returned: the server said 250
        except (aiosmtplib.SMTPException, OSError):
            return  # the server was killed
        finally:
            smtp.close()


async def stored_ids(settings: Settings) -> dict[str, collections.Counter[str]]:
    school = await School.open(settings, migrate=False)
    try:
        result = {}
        for login in RECIPIENTS:
            account = await school.directory.get_account(login)
            try:
                messages = await school.mail_store.read_mailbox(account.id)
            except MailboxNotFound:
                messages = []
            result[login] = collections.Counter(
                email.message_from_bytes(m.body)["X-Test-Id"] for m in messages)
        return result
    finally:
        await school.close()


@pytest.mark.timeout(180)
async def test_every_acknowledged_message_survives_sigkill(tmp_path: Path,
                                                           database_url: str) -> None:
    settings = make_settings(tmp_path / "schule", database_url)
    school = await School.open(settings, migrate=False)
    for login in RECIPIENTS:
        await school.directory.create_account(role=Role.TEACHER, login=login)
    await school.close()
    config = settings.base_dir / "schulhof.toml"
    config.write_text(render_settings_toml(settings), encoding="utf-8")
    log = tmp_path / "server.log"

    proc = start_server(config, log)
    try:
        await wait_listening(settings, proc, log)
        acked: list[tuple[str, str]] = []
        stop = asyncio.Event()
        senders = [asyncio.create_task(sender(settings, n, acked, stop))
                   for n in range(CLIENTS)]
        for _ in range(300):  # until a good number went through, at most 30 s
            if len(acked) >= 60:
                break
            await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGKILL)  # mid-stream: clients are in DATA right now
        proc.wait(timeout=30)
        await asyncio.wait_for(asyncio.gather(*senders), timeout=60)
        stop.set()
        assert len(acked) >= 10, log.read_text()

        proc = start_server(config, log)  # restart: the store must open cleanly
        await wait_listening(settings, proc, log)
        found = await stored_ids(settings)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    for login, marker in acked:
        assert found[login][marker] == 1, (login, marker, found[login][marker])
    for login in RECIPIENTS:  # nothing is stored twice, acknowledged or not
        assert all(count == 1 for count in found[login].values()), found[login]

"""Benchmark (issue 18): what the mail -> room bridge adds to delivering a mail to a
30-member class, measured from the submitting client (aiosmtplib over STARTTLS).

    PYTHONPATH=. python -m pytest -q -n 0 -s tests/bench/mail_bridge_delivery.py

Not collected by the suite (no ``test_`` file name; run it by path).  One running
school; the same number of mails to the class address with the bridge off, then on
(back to back on one connection), each with its own Message-ID.  Prints the medians
and their difference (the bridge runs after the 250: what remains is its contention
for the database with the next delivery), the median time of the room post itself, and
the process's CPU time per mail in each phase (less distorted by the machine's load).
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiosmtplib

from conf.app import School
from directory.model import GroupKind, MemberRole, Role
from messenger.mail_bridge import MailPost
from messenger.server import MatrixServer
from tests.support.bridge import DOMAIN, PASSWORD, tls_context

MAILS = 40


def _mail(number: int) -> bytes:
    return (f"From: Frau Lehrer <lehrer@{DOMAIN}>\r\nTo: 5a@{DOMAIN}\r\n"
            f"Message-ID: <bench-{number}@{DOMAIN}>\r\nSubject: Nachricht {number}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + "Text der Nachricht. " * 40
            ).encode()


async def test_bridge_cost_for_a_class_of_30(running_school: School) -> None:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_group("5a", kind=GroupKind.CLASS, display_name="Klasse 5a")
    await d.add_member("5a", "lehrer", MemberRole.OWNER)
    for n in range(30):
        await d.create_account(role=Role.PUPIL, login=f"kind{n}", password=PASSWORD)
        await d.add_member("5a", f"kind{n}")
    server = next(s for s in running_school.services if isinstance(s, MatrixServer))
    await server.school_rooms.sync_group_rooms()
    bridge = running_school.mail_bridge
    target = bridge.target
    assert target is not None
    posting: list[float] = []
    post = target.post

    async def timed(mail: MailPost) -> str | None:
        started = time.perf_counter()
        try:
            return await post(mail)
        finally:
            posting.append(time.perf_counter() - started)

    target.post = timed  # type: ignore[method-assign]
    timings: dict[bool, list[float]] = {True: [], False: []}
    # The process's CPU seconds per phase (the posts of the second included): the
    # machine's load stretches the wall-clock figures, much less these.
    cpu: dict[bool, float] = {True: 0.0, False: 0.0}
    loop_cpu: dict[bool, float] = {True: 0.0, False: 0.0}  # the event loop's thread alone
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=running_school.settings.listen.submission,
                           start_tls=True, tls_context=tls_context(running_school), timeout=30)
    async with smtp:
        await smtp.login("lehrer", PASSWORD)
        phase, loop_phase = time.process_time(), time.thread_time()
        for number in range(2 * MAILS):
            bridge.enabled = number >= MAILS  # first without, then with the bridge
            if number == MAILS:
                cpu[False] = time.process_time() - phase
                loop_cpu[False] = time.thread_time() - loop_phase
                phase, loop_phase = time.process_time(), time.thread_time()
            started = time.perf_counter()
            await smtp.sendmail(f"lehrer@{DOMAIN}", [f"5a@{DOMAIN}"], _mail(number))
            timings[bridge.enabled].append(time.perf_counter() - started)
    deadline = time.monotonic() + 30
    while len(posting) < MAILS and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the last posts run after their 250
    cpu[True] = time.process_time() - phase
    loop_cpu[True] = time.thread_time() - loop_phase
    on, off = (statistics.median(timings[k]) * 1000 for k in (True, False))
    print(f"\nmail to a class of 30 over submission: median {off:.1f} ms without the "
          f"bridge, {on:.1f} ms with it: +{on - off:.1f} ms ({MAILS} mails each); "
          f"the room post itself (after the 250): median "
          f"{statistics.median(posting) * 1000:.1f} ms; process CPU per mail "
          f"{cpu[False] / MAILS * 1000:.1f} ms without, {cpu[True] / MAILS * 1000:.1f} ms "
          f"with the bridge (+{(cpu[True] - cpu[False]) / MAILS * 1000:.1f} ms), of which "
          f"the event loop's thread +{(loop_cpu[True] - loop_cpu[False]) / MAILS * 1000:.1f} "
          "ms (the rest: the database threads)")
    assert len(posting) == MAILS

"""Benchmark (issue 18.2): one room-digest run for 2,000 people (target: under 10 s).

    PYTHONPATH=. python -m pytest -q -n 0 -s tests/bench/room_digests.py

Not collected by the suite (run it by path).  One school: 1,340 pupils in 67 classes
of 20 with a teacher each, every class an announcement room whose parents get digests,
660 parents linked to one pupil each (2,067 people in all).  Each teacher posts two
announcements; a third of the pupils have read them (read receipts).  The clock is
moved past the delay and ``DigestJob.run_once`` runs: it plans and delivers every
digest into the mailboxes (composition, Sieve, store).  Runs alternate between one
digest at a time (the first version) and 32 at once, the marks reset before each, so
both deliver the same (``ROOM_DIGESTS_CHUNKS=32``: the runs' chunk sizes,
comma-separated; default 1,32,1,32); prints each run's time, how many digests went out, a run right
after (nothing due: one per period) and the machine's load average.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from sqlalchemy import delete

from conf.app import School
from conf.wiring.digest import DigestJob
from directory.model import GroupKind, MemberRole, Role
from messenger.bridge_groups import BridgeGroups
from messenger.server import MatrixServer
from messenger.storage.tables import DigestRecipientRow

pytestmark = pytest.mark.timeout(3600)  # the set-up (2,000 accounts, 67 rooms) is slow

CLASSES, PUPILS_PER_CLASS = 67, 20
PARENTS = 660


async def test_digest_run_for_2000_people(running_school: School) -> None:
    d = running_school.directory
    setup = time.perf_counter()
    groups = BridgeGroups(running_school.db)
    pupils: list[str] = []
    for c in range(CLASSES):
        name = f"k{c}"
        await d.create_group(name, kind=GroupKind.CLASS, display_name=f"Klasse {c}")
        await d.create_account(role=Role.TEACHER, login=f"lehrer{c}")
        await d.add_member(name, f"lehrer{c}", MemberRole.OWNER)
        for p in range(PUPILS_PER_CLASS):
            login = f"kind{c}x{p}"
            await d.create_account(role=Role.PUPIL, login=login)
            await d.add_member(name, login)
            pupils.append(login)
        await groups.change(await d.get_group(name), parents_digest=True)
    for n in range(PARENTS):
        await d.create_account(role=Role.PARENT, login=f"eltern{n}")
        await d.link_parent(f"eltern{n}", pupils[n * 2])
    server = next(s for s in running_school.services if isinstance(s, MatrixServer))
    report = await server.school_rooms.sync_group_rooms()
    assert not report.errors, report.errors
    domain = running_school.settings.school.domain.lower()
    for c in range(CLASSES):
        room_id = await server.school_rooms.room_of_group(f"k{c}")
        assert room_id is not None
        last = ""
        for text in ("Morgen Wandertag.", "Elternabend am Montag um 19 Uhr."):
            last = await server.rooms.append_as(f"@lehrer{c}:{domain}", room_id,
                                                "m.room.message",
                                                {"msgtype": "m.text", "body": text})
        for p in range(0, PUPILS_PER_CLASS, 3):  # a third have read both
            await server.receipts.put(room_id, f"@kind{c}x{p}:{domain}", "m.read", "", last)
    print(f"\nsetup {time.perf_counter() - setup:.1f} s", flush=True)

    job = DigestJob(running_school)
    people = CLASSES * (PUPILS_PER_CLASS + 1) + PARENTS
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    # One after the other (each digest delivered and marked alone, as the first version
    # did) and 32 at a time with the marks of each chunk in one write, twice each,
    # alternating; before each run every mark is removed, so each run sends the same.
    figures: dict[int, list[tuple[float, int]]] = {}
    chunks = [int(c) for c in os.environ.get("ROOM_DIGESTS_CHUNKS", "1,32,1,32").split(",")]
    for chunk in chunks:
        async with running_school.db.write() as session:
            await session.execute(delete(DigestRecipientRow))
        job.digests.send_chunk = chunk
        load = os.getloadavg()[0]
        started = time.perf_counter()
        sent = await job.run_once(later)
        took = time.perf_counter() - started
        figures.setdefault(chunk, []).append((took, sent))
        print(f"chunk {chunk:2d}: digest run for {people} people: {took:.2f} s, {sent} "
              f"digests delivered ({took / max(sent, 1) * 1000:.1f} ms each), load "
              f"{load:.2f}", flush=True)
    started = time.perf_counter()
    again = await job.run_once(later + dt.timedelta(minutes=5))
    second = time.perf_counter() - started
    print(f"a second run 5 min later: {second:.2f} s, {again} digests; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    assert again == 0
    assert all(sent >= PARENTS for runs in figures.values() for _, sent in runs)

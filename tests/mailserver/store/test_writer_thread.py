"""The SQLite writer thread of the store's group commit
(mailserver.store.writer_thread): the next batch starts right after COMMIT
without the event loop, a failed batch reaches every caller waiting for it,
and the thread survives errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest

from directory.db import Database
from mailserver.store.batcher import Failed
from mailserver.store.raw_sql import Fetch, Steps
from mailserver.store.writer_thread import Waiting, WriterThread


class Refused(Exception):
    pass


class Recorder:
    """A plan of one ``SELECT`` per work item; "bad" raises (the whole
    transaction fails), "no" is refused alone (``Failed``), and "slow"
    waits in the writer thread until ``release`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()  # a "slow" batch has begun

    def plan(self, works: list[str]) -> tuple[Steps[list[str | Failed]], bool]:
        return self._steps(works), False

    def _steps(self, works: list[str]) -> Steps[list[str | Failed]]:
        self.threads.add(threading.current_thread().name)
        if "slow" in works:
            self.entered.set()
            self.release.wait(10)
        out: list[str | Failed] = []
        for work in works:
            if work == "bad":
                raise Refused(work)
            if work == "no":
                out.append(Failed(Refused(work)))
                continue
            [(echoed,)] = yield Fetch("SELECT ?", [work])
            out.append(str(echoed))
        self.batches.append(list(works))
        return out


def settle(batch: list[Waiting[str, str]], results: list[str | Failed]) -> None:
    for waiting, result in zip(batch, results, strict=True):
        if waiting.future.done():
            continue
        if isinstance(result, Failed):
            waiting.future.set_exception(result.error)
        else:
            waiting.future.set_result(result)


@pytest.fixture
async def writer(db: Database) -> AsyncIterator[tuple[WriterThread[str, str], Recorder]]:
    if db.sqlite_file is None:
        pytest.skip("the writer thread is for an SQLite file (PostgreSQL: raw_sql._PgWriter)")
    recorder = Recorder()
    thread: WriterThread[str, str] = WriterThread(db.sqlite_file, recorder.plan, settle)
    yield thread, recorder
    await thread.close()


async def test_a_failed_batch_reaches_every_caller_and_the_thread_goes_on(
        writer: tuple[WriterThread[str, str], Recorder]) -> None:
    thread, recorder = writer
    recorder.release.clear()
    first = thread.submit("slow")  # holds the thread until the others are queued
    assert recorder.entered.wait(10)
    queued = [thread.submit(work) for work in ("a", "bad", "no", "b")]
    recorder.release.set()
    assert await first == "slow"
    results = await asyncio.gather(*queued, return_exceptions=True)
    # The shared transaction failed; each was tried alone: only "bad" fails
    # with its error, "no" with its refusal, the others are committed.
    assert results[0] == "a" and results[3] == "b"
    assert isinstance(results[1], Refused) and str(results[1]) == "bad"
    assert isinstance(results[2], Refused) and str(results[2]) == "no"
    # Every caller of a batch that fails as a whole hears of it.
    alone = await asyncio.gather(thread.submit("bad"), return_exceptions=True)
    assert isinstance(alone[0], Refused)
    # The thread survived and still commits.
    assert await asyncio.gather(*(thread.submit(f"after{i}") for i in range(3))) == [
        "after0", "after1", "after2"]
    assert recorder.threads == {"schulhof-sqlite-writer"}


async def test_the_next_batch_commits_while_the_event_loop_is_busy(
        writer: tuple[WriterThread[str, str], Recorder]) -> None:
    """After COMMIT the thread takes what waits at once: the second batch is
    committed while the event loop is still blocked (it used to need the
    loop to resume the batcher's task and hand the batch over)."""
    thread, recorder = writer
    recorder.release.clear()
    first = thread.submit("slow")
    assert recorder.entered.wait(10)
    second = [thread.submit(work) for work in ("c", "d")]
    recorder.release.set()
    deadline = time.monotonic() + 10
    while len(recorder.batches) < 2 and time.monotonic() < deadline:
        time.sleep(0.001)  # the event loop's thread is busy: no turn of the loop
    assert recorder.batches == [["slow"], ["c", "d"]]
    assert await first == "slow" and await asyncio.gather(*second) == ["c", "d"]


async def test_close_commits_what_is_queued(
        writer: tuple[WriterThread[str, str], Recorder]) -> None:
    thread, _ = writer
    futures = [thread.submit(f"w{i}") for i in range(5)]
    await thread.close()
    assert await asyncio.gather(*futures) == [f"w{i}" for i in range(5)]
    with pytest.raises(RuntimeError):
        thread.submit("late")

"""``schulhof serve --workers N``: one school served by N processes (issue 15).

The parent starts N worker processes (``schulhof serve --worker I --workers N``)
and does nothing else: it restarts a worker that dies (kill -9, out of memory),
passes SIGTERM/SIGINT on and waits for them.  Every worker opens the school's
listeners with SO_REUSEPORT, so the kernel spreads incoming connections over
them; a dead worker's connections are lost (the client reconnects), a
message it answered 250 is committed.

Worker 0 runs what must run once per school (the outbound queue worker, the
group-room sync); a restarted worker 0 takes them up again.  All workers use
one PostgreSQL database and tell each other about changes with LISTEN/NOTIFY
(``directory.pg_broadcast``): IMAP IDLE, /sync and login throttling see what
happened in another worker.  On SQLite there is one process (a second writer
would only queue behind the first).

The parent logs ``event=ready`` once every worker is ready (the workers log
``event=worker_ready``), and ``event=worker_restarted`` when it replaced one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

log = logging.getLogger("schulhof.workers")

READY_LINE = b"schulhof-worker-ready\n"
RESTART_DELAY = 0.5  # seconds before a dead worker is replaced
MAX_RESTART_DELAY = 30.0  # a worker that keeps dying at start is retried this seldom
STOP_SECONDS = 30.0  # SIGTERM to SIGKILL


def worker_count(requested: int, sqlite: bool) -> int:
    """The number of worker processes: ``requested`` (0: one per core), 1 on SQLite."""
    count = requested if requested > 0 else (os.cpu_count() or 1)
    return 1 if sqlite else count


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux PR_SET_PDEATHSIG),
    so a killed supervisor leaves no workers holding the ports."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0


class Supervisor:
    """Starts, watches and stops the workers; ``argv`` is the worker's command line
    without ``--worker I``."""

    def __init__(self, argv: Sequence[str], count: int) -> None:
        self._argv = list(argv)
        self.workers = [Worker(i) for i in range(count)]
        self._stopping = False
        self._readers: set[asyncio.Task[None]] = set()

    async def _spawn(self, worker: Worker) -> None:
        worker.ready = asyncio.Event()
        worker.process = await asyncio.create_subprocess_exec(
            *self._argv, "--worker", str(worker.index), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent)
        worker.started_at = time.monotonic()
        task = asyncio.create_task(self._watch_ready(worker, worker.process))
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def _watch_ready(self, worker: Worker,
                           process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            if line == READY_LINE and worker.process is process:
                worker.ready.set()

    async def run(self, stop: asyncio.Event) -> int:
        for worker in self.workers:
            await self._spawn(worker)
        ready = asyncio.create_task(self._all_ready())
        watchers = [asyncio.create_task(self._keep(worker, stop)) for worker in self.workers]
        stopped = asyncio.create_task(_wait(stop))
        await asyncio.wait([ready, stopped], return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            log.info("event=ready workers=%d pids=%s", len(self.workers),
                     ",".join(str(w.process.pid) for w in self.workers if w.process))
        else:
            ready.cancel()
        await stopped
        self._stopping = True
        log.info("event=stopping workers=%d", len(self.workers))
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        await self._wait_all()
        for task in watchers:
            task.cancel()
        log.info("event=stopped")
        return 0

    def signal_all(self, sig: signal.Signals) -> None:
        """Pass a signal on (SIGHUP: every worker reloads the TLS certificate)."""
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(sig)

    async def _all_ready(self) -> None:
        for worker in self.workers:
            await worker.ready.wait()

    async def _keep(self, worker: Worker, stop: asyncio.Event) -> None:
        """Restart ``worker`` whenever it exits, until the school stops."""
        delay = RESTART_DELAY
        while True:
            assert worker.process is not None
            code = await worker.process.wait()
            if self._stopping or stop.is_set():
                return
            lived = time.monotonic() - worker.started_at
            log.warning("event=worker_died worker=%d pid=%d code=%s lived_seconds=%.1f",
                        worker.index, worker.process.pid, code, lived)
            # Dying right after start again and again (a bad setting): wait longer each time.
            delay = RESTART_DELAY if lived > 60 else min(delay * 2, MAX_RESTART_DELAY)
            await asyncio.sleep(delay)
            if self._stopping or stop.is_set():
                return
            await self._spawn(worker)
            worker.restarts += 1
            try:
                await asyncio.wait_for(worker.ready.wait(), 120)
            except TimeoutError:
                continue  # its exit (if it fails) brings the loop round again
            log.info("event=worker_restarted worker=%d pid=%d", worker.index,
                     worker.process.pid)

    async def _wait_all(self) -> None:
        processes = [w.process for w in self.workers if w.process is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)),
                                   STOP_SECONDS)
        except TimeoutError:
            for process in processes:
                if process.returncode is None:
                    log.warning("event=worker_killed pid=%d reason=stop_timeout", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            await asyncio.gather(*(p.wait() for p in processes))


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


def announce_ready() -> None:
    """A worker tells its supervisor that its listeners are open."""
    sys.stdout.buffer.write(READY_LINE)
    sys.stdout.buffer.flush()

"""The fuzz campaign: a budget of seconds, seeded workers, and what counts as a finding.

A campaign runs ``workers`` loops against one real ``schulhof serve`` process
until its time is up.  Each case is made from its own seed (drawn from the
campaign's seed), so a printed seed reproduces the same inputs.  Findings:

* ``crash``: the server process exited;
* ``log``: an ERROR/CRITICAL record or a traceback in the server's log (a
  request that broke something the server caught, e.g. a Matrix 500 or an
  IMAP ``NO [SERVERBUG]``; also any background task that failed);
* ``5xx``: an answer that says the server broke (HTTP 5xx, IMAP SERVERBUG,
  aiosmtpd's ``500 Error: (Exception)``), reported by the protocol's driver;
* ``hang``: no answer within ``hang_seconds`` although the input was complete
  (the driver sends what completes any open literal, DATA or IDLE first) and
  the connection is still open;
* ``rss``: the server's resident memory grew by more than the bound between
  the end of the warm-up and the end of the campaign.

A log finding cannot be pinned on one case while several workers run, so the
recent cases of every worker are replayed one at a time, and the first whose
replay logs an error again is reported as the failing input.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.support.serve_process import ServeProcess


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value else default


def fuzz_seconds() -> float:
    """The whole fuzz budget (``FUZZ_SECONDS``), shared by the three protocols."""
    return env_float("FUZZ_SECONDS", 60.0)


def fuzz_seed() -> int:
    value = os.environ.get("FUZZ_SEED", "")
    return int(value) if value else random.SystemRandom().getrandbits(48)


@dataclass(frozen=True)
class Finding:
    kind: str  # crash | log | 5xx | hang | rss
    detail: str
    case_seed: int | None = None
    transcript: str = ""

    def render(self) -> str:
        seed = f" case_seed={self.case_seed}" if self.case_seed is not None else ""
        text = f"[{self.kind}]{seed} {self.detail}"
        if self.transcript:
            text += f"\n  input/output:\n{self.transcript}"
        return text


class CaseFailed(Exception):
    """Raised by a driver for a 5xx-like answer or a hang; carries the kind."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass
class Transcript:
    """What one case sent and received, for the report (truncated reprs)."""

    lines: list[str] = field(default_factory=list)

    def sent(self, data: bytes) -> None:
        self.lines.append(f"    C: {_short(data)}")

    def got(self, data: bytes) -> None:
        self.lines.append(f"    S: {_short(data)}")

    def note(self, text: str) -> None:
        self.lines.append(f"    -- {text}")

    def render(self) -> str:
        return "\n".join(self.lines[-60:])


def _short(data: bytes, limit: int = 400) -> str:
    text = repr(data)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(data)} bytes)"


# A driver runs one case: the generator's rng in, a transcript filled in; it
# raises CaseFailed for a 5xx answer or a hang.
Driver = Callable[[random.Random, Transcript], Awaitable[None]]


@dataclass
class Campaign:
    name: str
    server: ServeProcess
    seed: int
    seconds: float
    workers: int = 4
    hang_seconds: float = 15.0
    rss_growth_mib: float = 64.0
    warmup_fraction: float = 0.1
    cases: int = 0
    findings: list[Finding] = field(default_factory=list)
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    _recent: dict[int, collections.deque[int]] = field(default_factory=dict)

    async def run(self, driver: Driver) -> None:
        master = random.Random(self.seed)
        worker_seeds = [master.getrandbits(64) for _ in range(self.workers)]
        started = time.monotonic()
        deadline = started + self.seconds
        warmup_until = started + self.seconds * self.warmup_fraction
        self.server.mark_log()
        stop = asyncio.Event()

        async def worker(number: int) -> None:
            rng = random.Random(worker_seeds[number])
            recent = self._recent.setdefault(number, collections.deque(maxlen=8))
            while not stop.is_set() and time.monotonic() < deadline:
                case_seed = rng.getrandbits(64)
                recent.append(case_seed)
                transcript = Transcript()
                try:
                    await driver(random.Random(case_seed), transcript)
                except CaseFailed as failed:
                    self.findings.append(Finding(failed.kind, failed.detail, case_seed,
                                                 transcript.render()))
                    stop.set()
                self.cases += 1
                if not self.server.alive():
                    self.findings.append(Finding(
                        "crash", f"serve exited with {self.server.proc.returncode}",
                        case_seed, transcript.render()))
                    stop.set()

        async def watcher() -> None:
            measured = False
            while not stop.is_set() and time.monotonic() < deadline:
                if not measured and time.monotonic() >= warmup_until and self.server.alive():
                    self.rss_before_kib = self.server.rss_kib()
                    measured = True
                if self.server.new_bad_log_lines():
                    stop.set()
                await asyncio.sleep(0.5)

        tasks = [asyncio.create_task(worker(n)) for n in range(self.workers)]
        tasks.append(asyncio.create_task(watcher()))
        await asyncio.gather(*tasks)
        if self.server.alive():
            self.rss_after_kib = self.server.rss_kib()
        await self._check_log(driver)
        self._check_rss()
        self.server.mark_log()  # what stopping logs is checked on its own

    async def _check_log(self, driver: Driver) -> None:
        bad = self.server.new_bad_log_lines()
        if not bad:
            return
        if self.findings:  # the log lines belong to a finding already pinned on its case
            self.findings.append(Finding("log", f"server logged an error:\n{bad[0]}"))
            return
        culprit = await self._replay_for_log_error(driver) if self.server.alive() else None
        if culprit is not None:
            self.findings.append(Finding("log", culprit[1], culprit[0], culprit[2]))
        else:
            self.findings.append(Finding(
                "log", f"server logged an error (not reproduced by replay):\n{bad[0]}",
                None, "recent case seeds: " + repr({k: list(v)
                                                   for k, v in self._recent.items()})))

    async def _replay_for_log_error(self, driver: Driver) -> tuple[int, str, str] | None:
        """Replay each worker's recent cases alone; the first that logs an error again."""
        await asyncio.sleep(1.0)  # let the original errors' log lines be written
        for case_seed in [s for recent in self._recent.values() for s in reversed(recent)]:
            self.server.mark_log()
            transcript = Transcript()
            try:
                await driver(random.Random(case_seed), transcript)
            except CaseFailed as failed:
                transcript.note(f"{failed.kind}: {failed.detail}")
            await asyncio.sleep(0.5)
            bad = self.server.new_bad_log_lines()
            if bad:
                return case_seed, f"server logged an error:\n{bad[0]}", transcript.render()
        return None

    def _check_rss(self) -> None:
        if not self.rss_before_kib or not self.rss_after_kib:
            return
        growth = (self.rss_after_kib - self.rss_before_kib) / 1024
        if growth > self.rss_growth_mib:
            self.findings.append(Finding(
                "rss", f"RSS grew {growth:.1f} MiB ({self.rss_before_kib} -> "
                f"{self.rss_after_kib} KiB), bound {self.rss_growth_mib} MiB"))

    def summary(self) -> str:
        growth = ((self.rss_after_kib - self.rss_before_kib) / 1024
                  if self.rss_before_kib and self.rss_after_kib else float("nan"))
        return (f"fuzz {self.name}: seed={self.seed} seconds={self.seconds:.0f} "
                f"cases={self.cases} findings={len(self.findings)} "
                f"rss={self.rss_before_kib}->{self.rss_after_kib} KiB ({growth:+.1f} MiB)")

    def report(self) -> str:
        return "\n".join([self.summary(), *(f.render() for f in self.findings)])


async def wait_answer(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """Whatever the server sends within ``seconds`` (b"" on EOF); None if nothing came."""
    try:
        return await asyncio.wait_for(reader.read(65536), seconds)
    except TimeoutError:
        return None
    except (ConnectionError, OSError):
        return b""

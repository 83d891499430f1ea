"""A real ``schulhof --config FILE serve`` process for fuzzing and soak tests.

The school is made in-process (settings, database, accounts with passwords),
its settings written to ``schulhof.toml``, and then the server runs as a child
process with its log in a file: the tests can SIGKILL it, watch its resident
memory in ``/proc`` and scan its log for tracebacks, exactly as an operator
would see them.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conf.app import School
from conf.settings import Settings, render_settings_toml
from directory.model import Role

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0
# A line the operator would have to act on: an ERROR/CRITICAL record or a traceback.
_BAD_LOG_LINE = re.compile(r"level=(ERROR|CRITICAL)|^Traceback ", re.MULTILINE)


LISTENING_LINE = re.compile(r"event=listening service=[\w-]+ \w+=\S+")


def _env() -> dict[str, str]:
    # The test runner's SCHULHOF_* variables (the test database URL) are not the school's.
    return {k: v for k, v in os.environ.items() if not k.startswith("SCHULHOF_")}


async def create_accounts(settings: Settings, accounts: dict[str, tuple[Role, str]]) -> None:
    """``accounts``: login -> (role, password), made directly in the school's database."""
    school = await School.open(settings, migrate=False)
    try:
        for login, (role, password) in accounts.items():
            await school.directory.create_account(role=role, login=login, password=password,
                                                  display_name=login.title())
    finally:
        await school.close()


@dataclass
class ServeProcess:
    """One school's ``serve`` process; restartable, killable, its log kept across runs."""

    settings: Settings
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    extra_args: list[str] = field(default_factory=list)  # after ``serve``, e.g. --workers
    startup_seconds: float = STARTUP_SECONDS  # several workers on a busy machine need more
    stop_seconds: float = 30.0  # SIGTERM until exit (a supervisor waits for its workers)
    _log_offset: int = field(default=0, repr=False)

    @property
    def config(self) -> Path:
        return self.settings.base_dir / "schulhof.toml"

    @classmethod
    def for_settings(cls, settings: Settings) -> ServeProcess:
        config = settings.base_dir / "schulhof.toml"
        config.write_text(render_settings_toml(settings), encoding="utf-8")
        return cls(settings=settings, log=settings.base_dir / "server.log")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _ready_count(self) -> int:
        return self.log_text().count("event=ready")

    async def start(self) -> None:
        """Start and wait until the school logged ``event=ready`` (all listeners bound)."""
        before = self._ready_count()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "conf.cli", "--config", str(self.config), "serve",
                 *self.extra_args],
                cwd=REPO, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=log)
        self.starts += 1
        deadline = asyncio.get_running_loop().time() + self.startup_seconds
        while self._ready_count() == before:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n"
                                     f"{self.log_text()[-3000:]}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"serve not ready in {self.startup_seconds} s:\n"
                                     f"{self.log_text()[-3000:]}")
            await asyncio.sleep(0.05)
        self._check_listening_lines()

    def _check_listening_lines(self) -> None:
        # Operators grep and parse these lines (README: ``event=listening service=... addr=...``).
        for line in self.log_text().splitlines():
            if "event=listening" in line:
                assert LISTENING_LINE.search(line), f"listening line out of format: {line}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a power cut or an OOM kill."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    async def stop(self) -> int | None:
        """SIGTERM and wait; the exit code (None if it was not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, self.stop_seconds)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait, 10)
                raise AssertionError("serve ignored SIGTERM") from None
        return self.proc.returncode

    def rss_kib(self) -> int:
        """Resident set size of the server process (VmRSS in /proc/PID/status), KiB."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match, status
        return int(match.group(1))

    def mark_log(self) -> None:
        """Only log lines written from now on count for :meth:`new_bad_log_lines`."""
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0

    def new_bad_log_lines(self) -> list[str]:
        """ERROR/CRITICAL records and tracebacks logged since :meth:`mark_log`, with context."""
        if not self.log.exists():
            return []
        with self.log.open("rb") as f:
            f.seek(self._log_offset)
            text = f.read().decode(errors="replace")
        lines = text.splitlines()
        found = []
        for number, line in enumerate(lines):
            if _BAD_LOG_LINE.search(line):
                found.append("\n".join(lines[number:number + 25]))
        return found

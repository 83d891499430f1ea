"""``schulhof serve`` as a real process: ready, then a clean stop on SIGTERM and SIGINT."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conf.settings import render_settings_toml
from tests.support.schools import make_settings

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class ServerProcess:
    """``python -m conf.cli --config FILE serve`` with its stderr read line by line."""

    def __init__(self, config: Path) -> None:
        # Only the file configures the school: no SCHULHOF_* override from our environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHULHOF_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conf.cli", "--config", str(config), "serve"],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} from the server; its stderr:\n{self.log}")

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.lines.append(line)
        return code

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    settings = make_settings(tmp_path / "schule", database_url)
    path = settings.base_dir / "schulhof.toml"
    path.write_text(render_settings_toml(settings), encoding="utf-8")
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_runs_until_a_signal_and_stops_cleanly(config: Path, signum: int) -> None:
    server = ServerProcess(config)
    try:
        ready = server.wait_for("event=ready", START_TIMEOUT)
        assert "domain=schule.test" in ready
        server.proc.send_signal(signum)
        code = server.finish(STOP_TIMEOUT)
    finally:
        server.kill()
    assert code == 0, server.log
    assert "event=stopping" in server.log and "event=stopped" in server.log
    assert "Traceback" not in server.log
    assert server.log.rstrip().splitlines()[-1].endswith("event=stopped")

"""Stopping the helper processes tests and benchmarks start (clamd, rspamd,
redis, Dovecot, ``schulhof serve``): politely, then for sure."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_processes(*processes: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM to all first (they shut down side by side), then wait for each up to
    ``timeout`` seconds and SIGKILL one that is still there."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

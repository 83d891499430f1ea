"""Which ``serve`` worker holds the server side of a client's TCP connection.

With SO_REUSEPORT the kernel picks the worker; a test that needs "connected to
worker 1" and "connected to worker 2" opens connections until it has both, and
asks here: the server side of the connection is the row of /proc/net/tcp whose
remote port is the client's local port, and its inode is an open file of
exactly one worker process (/proc/PID/fd).  Linux only; as root (or the same
user as the workers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / entry)
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(int(match.group(1)))
    return inodes


def _inode(local_port: int, remote_port: int) -> int | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == local_port \
                    and int(fields[2].rsplit(":", 1)[1], 16) == remote_port:
                return int(fields[9])
    return None


def serving_pid(server_port: int, client_port: int, pids: Iterable[int]) -> int | None:
    """The pid among ``pids`` that holds the accepted socket of the connection from
    local port ``client_port`` to ``server_port`` (None: not found, e.g. not accepted yet)."""
    return owning_pid(server_port, client_port, pids)


def owning_pid(local_port: int, remote_port: int, pids: Iterable[int]) -> int | None:
    """The pid among ``pids`` with the socket ``local_port`` -> ``remote_port``."""
    inode = _inode(local_port, remote_port)
    if inode is None:
        return None
    for pid in pids:
        try:
            if inode in _socket_inodes(pid):
                return pid
        except OSError:
            continue
    return None


def worker_pids(log_text: str) -> dict[int, int]:
    """worker index -> pid of its current process, from the serve log
    (``event=worker_ready worker=I`` lines carry no pid, the supervisor's do)."""
    pids: dict[int, int] = {}
    ready = re.search(r"event=ready workers=\d+ pids=([\d,]+)", log_text)
    if ready:
        for index, pid in enumerate(ready.group(1).split(",")):
            pids[index] = int(pid)
    for match in re.finditer(r"event=worker_restarted worker=(\d+) pid=(\d+)", log_text):
        pids[int(match.group(1))] = int(match.group(2))
    return pids

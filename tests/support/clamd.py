"""A throwaway ClamAV daemon (Debian's ``clamav-daemon``) for the virus tests.

ClamAV's official signatures come from database.clamav.net, which the test
machines cannot reach, so this clamd loads one signature of our own: the MD5
hash of the EICAR test file (a ``.hdb`` database, ClamAV's documented format
``md5:size:name``). clamd then finds EICAR exactly as it would with the
official database, which also knows it; it starts in a second instead of the
half minute and 1 GiB the official database costs.
"""

from __future__ import annotations

import getpass
import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import stop_processes
from tests.support.schools import free_port

# The EICAR anti-virus test file (eicar.org): harmless, found by every scanner.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE_NAME = "Schulhof.Test.EICAR"

_CONFIG = """Foreground yes
DatabaseDirectory {root}/db
TCPSocket {port}
TCPAddr 127.0.0.1
LogFile {root}/clamd.log
PidFile {root}/clamd.pid
User {user}
"""


@dataclass(frozen=True)
class Clamd:
    host: str
    port: int


def available() -> bool:
    return shutil.which("clamd") is not None


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.sendall(b"zPING\0")
            return connection.recv(16).startswith(b"PONG")
    except OSError:
        return False


@contextmanager
def running_clamd(root: Path, *, start_timeout: float = 60.0) -> Iterator[Clamd]:
    """clamd with the EICAR signature in ``root``; stopped afterwards."""
    (root / "db").mkdir(parents=True, exist_ok=True)
    (root / "db" / "schulhof.hdb").write_text(
        f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:{SIGNATURE_NAME}\n")
    port = free_port("127.0.0.1")
    (root / "clamd.conf").write_text(_CONFIG.format(root=root, port=port,
                                                    user=getpass.getuser()))
    clamd = subprocess.Popen(["clamd", "-c", str(root / "clamd.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + start_timeout
        while not _ping(port):
            if clamd.poll() is not None or time.monotonic() > deadline:
                log = root / "clamd.log"
                raise RuntimeError("clamd did not start: " + (
                    log.read_text()[-2000:] if log.exists() else "no log"))
            time.sleep(0.2)
        yield Clamd("127.0.0.1", port)
    finally:
        stop_processes(clamd)

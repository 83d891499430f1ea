"""A throwaway Dovecot for side-by-side IMAP benchmarks (issue 14).

    python -m tests.bench.dovecot --users 3      # start one, print its port, wait

Debian's ``dovecot-imapd`` (``apt-get install dovecot-imapd``; the package
is installed once, its system service is never used): a private config, base
and state directories and maildirs under a temporary folder, IMAPS on a free
loopback port with a given test certificate, users with plain passwords in a
passwd-file.  Messages are put into the maildirs as files (Dovecot indexes
them on first SELECT), so filling costs no IMAP round trips.

Run as root (the master drops privileges to the package's ``dovecot`` /
``dovenull`` users, mail is owned by ``dovecot``) or as an ordinary user
(then everything runs as that user).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import stop_processes

DOVECOT = "/usr/sbin/dovecot"


@dataclass
class Dovecot:
    """A running throwaway Dovecot: its IMAPS port and master process."""

    port: int
    process: subprocess.Popen[bytes]
    base: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lmtp(lmtp_socket: Path | None) -> str:
    """LMTP on a unix socket for a Postfix peer (tests.bench.postfix): recipients
    are looked up by their local part, the socket is open to the postfix user."""
    if lmtp_socket is None:
        return ""
    owner = "postfix" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    return f"""
auth_username_format = %Ln
service lmtp {{
  unix_listener {lmtp_socket} {{
    mode = 0660
    user = {owner}
  }}
  process_min_avail = 2
}}
"""


def _config(base: Path, port: int, certificate: Path, key: Path,
            lmtp_socket: Path | None = None) -> str:
    root = os.geteuid() == 0
    me = pwd.getpwuid(os.geteuid()).pw_name
    mail_user = "dovecot" if root else me
    dh = "ssl_dh = </usr/share/dovecot/dh.pem\n" if Path(
        "/usr/share/dovecot/dh.pem").exists() else ""
    return f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
protocols = imap{" lmtp" if lmtp_socket else ""}
mail_fsync = optimized
listen = 127.0.0.1
ssl = required
ssl_cert = <{certificate}
ssl_key = <{key}
{dh}auth_mechanisms = plain login
first_valid_uid = 1
default_internal_user = {"dovecot" if root else me}
default_login_user = {"dovenull" if root else me}
mail_location = maildir:~/Maildir
mail_max_userip_connections = 10000
passdb {{
  driver = passwd-file
  args = {base}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_user} home={base}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service imap {{
  process_limit = 10000
}}
{_lmtp(lmtp_socket)}"""


def maildir_put(base: Path, user: str, messages: Iterable[bytes], flags: str = "") -> int:
    """Put messages into ``user``'s INBOX maildir as files (``cur/`` with
    the given maildir flags, e.g. "S" for \\Seen). Returns the count."""
    inbox = base / "home" / user / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    count = 0
    stamp = int(time.time())
    for count, message in enumerate(messages, 1):
        name = f"{stamp}.M{count}P{os.getpid()}.bench,S={len(message)}:2,{flags}"
        (inbox / "cur" / name).write_bytes(message)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("dovecot")
        for path in [base / "home" / user, *(base / "home" / user).rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
    return count


@contextlib.contextmanager
def throwaway_dovecot(base: Path, users: dict[str, str], certificate: Path,
                      key: Path, lmtp_socket: Path | None = None) -> Iterator[Dovecot]:
    """Start Dovecot for ``users`` (login -> password) under ``base``; stop
    it (and only it) on exit.  ``lmtp_socket``: also accept deliveries over
    LMTP on that unix socket (for a Postfix in front)."""
    if not Path(DOVECOT).exists():
        raise RuntimeError("dovecot is not installed: apt-get install dovecot-imapd")
    base.mkdir(parents=True, exist_ok=True)
    (base / "home").mkdir(exist_ok=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("dovecot")
        os.chown(base / "home", owner.pw_uid, owner.pw_gid)
        # The unprivileged auth and mail processes must reach the files:
        # open our own temporary folders for traversal (x), not for reading.
        for folder in (base, *base.parents):
            if str(folder).startswith(tempfile.gettempdir() + os.sep):
                folder.chmod(folder.stat().st_mode | 0o711)
    (base / "passwd").write_text("".join(f"{login}:{{PLAIN}}{password}\n"
                                         for login, password in users.items()))
    port = _free_port()
    (base / "dovecot.conf").write_text(_config(base, port, certificate, key, lmtp_socket))
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(base / "dovecot.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                error = process.stderr.read().decode() if process.stderr else ""
                log = (base / "dovecot.log").read_text() if (
                    base / "dovecot.log").exists() else ""
                raise RuntimeError(f"dovecot did not start: {error}{log[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("dovecot did not open its port")
            time.sleep(0.1)
        yield Dovecot(port, process, base)
    finally:
        stop_processes(process, timeout=15)  # the master stops its children itself


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants,
    plus what its exited children had used (``cutime``/``cstime``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        fields = stats.get(current)
        if fields is None:
            continue
        total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / ticks
        todo.extend(children.get(current, []))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2)
    parser.add_argument("--password", default="Geheim-Passwort-123")
    args = parser.parse_args()
    from tests.support.schools import make_settings

    with tempfile.TemporaryDirectory() as work:
        settings = make_settings(Path(work) / "school", "sqlite+aiosqlite:///:memory:")
        users = {f"bench{n}": args.password for n in range(args.users)}
        with throwaway_dovecot(Path(work) / "dovecot", users,
                               settings.path(settings.tls.certificate),
                               settings.path(settings.tls.key)) as dovecot:
            print(f"dovecot pid {dovecot.pid} on 127.0.0.1:{dovecot.port} (IMAPS), users "
                  f"{', '.join(users)}; Ctrl-C stops it")
            with contextlib.suppress(KeyboardInterrupt):
                dovecot.process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

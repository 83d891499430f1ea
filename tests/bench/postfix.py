"""A throwaway Postfix delivering over LMTP into a throwaway Dovecot (issue 15).

Debian's ``postfix`` (``apt-get install postfix dovecot-lmtpd``; the system
service is never used): ``main.cf`` and ``master.cf`` written to a temporary
folder with its own queue and data directories, smtpd on a spare loopback
port, ``virtual_mailbox_domains`` for the test domain and
``virtual_transport = lmtp:unix:<dovecot's lmtp socket>`` (nothing chrooted).
Dovecot (tests.bench.dovecot) stores into maildirs with ``mail_fsync =
optimized``; a message counts once its file is in ``new/`` (Dovecot renames
it there after the fsync).

Run as root: the Postfix master starts its daemons as ``postfix``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
SMTP_SOURCE = "/usr/sbin/smtp-source"

# Every daemon a delivery over LMTP needs; no chroot (the sockets are absolute paths).
MASTER_CF = """\
{port} inet n - n - {smtpd_limit} smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def main_cf(base: Path, domain: str, lmtp_socket: Path) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {base}/postfix.log
maillog_file_prefixes = {base}
myhostname = peer.bench.invalid
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_client_connection_rate_limit = 0
smtpd_client_connection_count_limit = 0
virtual_mailbox_domains = {domain}
virtual_transport = lmtp:unix:{lmtp_socket}
lmtp_destination_concurrency_limit = 20
lmtp_destination_recipient_limit = 1
default_process_limit = 100
smtputf8_enable = no
biff = no
"""


@dataclass
class Postfix:
    port: int
    base: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def throwaway_postfix(base: Path, domain: str, lmtp_socket: Path,
                      smtpd_limit: int = 100) -> Iterator[Postfix]:
    """Start a Postfix under ``base`` for ``domain``; stop it on exit."""
    if os.geteuid() != 0:
        raise RuntimeError("the Postfix peer needs root (its master runs daemons as postfix)")
    if not Path(POSTFIX).exists():
        raise RuntimeError("postfix is not installed: apt-get install postfix")
    base.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    (base / "main.cf").write_text(main_cf(base, domain, lmtp_socket))
    (base / "master.cf").write_text(MASTER_CF.format(port=port, smtpd_limit=smtpd_limit))
    (base / "queue").mkdir(exist_ok=True)
    (base / "data").mkdir(exist_ok=True)
    owner = pwd.getpwnam("postfix")
    os.chown(base / "data", owner.pw_uid, owner.pw_gid)
    env = {**os.environ, "MAIL_CONFIG": str(base)}
    # set-permissions/create-missing lay out the queue directories with their owners.
    subprocess.run([POSTFIX, "-c", str(base), "check"], env=env, check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = subprocess.run([POSTFIX, "-c", str(base), "start"], env=env,
                             capture_output=True, text=True)
    if started.returncode != 0:
        raise RuntimeError(f"postfix did not start: {started.stderr}{started.stdout}")
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                log = (base / "postfix.log").read_text() if (base / "postfix.log").exists() \
                    else ""
                raise RuntimeError(f"postfix did not open its port: {log[-2000:]}")
            time.sleep(0.1)
        yield Postfix(port, base)
    finally:
        subprocess.run([POSTFIX, "-c", str(base), "stop"], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with contextlib.suppress(OSError):
            shutil.rmtree(base / "queue")

"""A throwaway rspamd (Debian's package) with its own redis, for the spam tests.

Debian's rule set (``$CONFDIR/common.conf``) with our options: a temporary
database and run directory, DNS only to the tests' quiet DNS server (no
network lookups), a tiny TLD list (compiling the public suffix list with
hyperscan takes minutes on a busy machine), and one test rule: a Subject
containing ``SCHULHOF-JUNK-TEST`` scores 8 (between "add header" at 6 and
"reject" at 15), so the Junk path can be tested without real spam; one containing
``SCHULHOF-GREY-TEST`` scores 5 (above "greylist" at 4), which rspamd's greylist
module answers with "soft reject" until the same triplet comes back after
``greylist_seconds`` (3 s here instead of 5 minutes).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.dns_server import quiet_dns
from tests.support.processes import stop_processes
from tests.support.schools import free_port

JUNK_SUBJECT = "SCHULHOF-JUNK-TEST"
GREY_SUBJECT = "SCHULHOF-GREY-TEST"
GREYLIST_SECONDS = 3

_CONFIG = """.include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    filters = "chartable,dkim,regexp";
    cache_file = "$DBDIR/symbols.cache";
    dynamic_conf = "$DBDIR/rspamd_dynamic";
    history_file = "$DBDIR/rspamd.history";
    stats_file = "$DBDIR/stats.ucl";
    hs_cache_dir = "$DBDIR/";
    control_socket = "$DBDIR/rspamd.sock mode=0600";
    explicit_modules = ["settings", "bayes_expiry"];
    allow_raw_input = true;
    url_tld = "{root}/tld.dat";
    disable_hyperscan = true;
    task_timeout = 8s;
    local_addrs = [];
    dns {{ nameserver = ["{dns}"]; timeout = 0.5s; retransmits = 1; sockets = 4; }}
}}
logging {{ type = "file"; filename = "$LOGDIR/rspamd.log"; level = "warning"; }}
worker "normal" {{ bind_socket = "127.0.0.1:{scan}"; .include "$CONFDIR/worker-normal.inc" }}
worker "controller" {{ bind_socket = "127.0.0.1:{controller}";
    .include "$CONFDIR/worker-controller.inc" }}
"""
_MULTIMAP = """SCHULHOF_JUNK_TEST {{
    type = "header"; header = "Subject"; regexp = true;
    map = "{root}/junk_subjects.map"; score = 8.0;
}}
SCHULHOF_GREY_TEST {{
    type = "header"; header = "Subject"; regexp = true;
    map = "{root}/grey_subjects.map"; score = 5.0;
}}
"""
_GREYLIST = "timeout = {seconds}s; check_local = {local};\n"
# rspamd's antivirus module asking a clamd (tests/support/clamd.py) about every
# attachment; a virus makes rspamd's action "reject" with the signature's name.
_ANTIVIRUS = """clamav {{
    type = "clamav"; servers = "{host}:{port}"; symbol = "CLAM_VIRUS";
    action = "reject"; message = '${{SCANNER}}: virus found: "${{VIRUS}}"';
    scan_mime_parts = true; scan_text_mime = true; log_clean = true; timeout = 5.0;
}}
"""


@dataclass(frozen=True)
class Rspamd:
    scan_url: str
    controller_url: str
    redis_port: int


def available() -> bool:
    return all(shutil.which(tool) for tool in ("rspamd", "redis-server", "redis-cli"))


@contextmanager
def running_rspamd(root: Path, *, start_timeout: float = 120.0,
                   greylist_loopback: bool = False,
                   clamd: tuple[str, int] | None = None) -> Iterator[Rspamd]:
    """rspamd and redis in ``root``; both stopped (by their pids) afterwards.
    With ``clamd`` (host, port) rspamd's antivirus module scans attachments there."""
    for name in ("local.d", "override.d", "db", "run", "log"):
        (root / name).mkdir(parents=True, exist_ok=True)
    dns_host, dns_port = quiet_dns()
    scan, controller, redis_port = free_port("127.0.0.1"), free_port("127.0.0.1"), \
        free_port("127.0.0.1")
    (root / "tld.dat").write_text("com\norg\nnet\nde\nexample\ntest\n")
    (root / "junk_subjects.map").write_text(f"/{JUNK_SUBJECT}/\n")
    (root / "grey_subjects.map").write_text(f"/{GREY_SUBJECT}/\n")
    (root / "local.d" / "greylist.conf").write_text(_GREYLIST.format(
        seconds=GREYLIST_SECONDS, local=str(greylist_loopback).lower()))
    (root / "rspamd.conf").write_text(_CONFIG.format(root=root, dns=f"{dns_host}:{dns_port}",
                                                     scan=scan, controller=controller))
    (root / "local.d" / "redis.conf").write_text(f'servers = "127.0.0.1:{redis_port}";\n')
    (root / "local.d" / "multimap.conf").write_text(_MULTIMAP.format(root=root))
    if clamd is not None:
        (root / "local.d" / "antivirus.conf").write_text(
            _ANTIVIRUS.format(host=clamd[0], port=clamd[1]))
    (root / "override.d" / "fuzzy_check.conf").write_text("enabled = false;\n")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(root / "db")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rspamd = subprocess.Popen(
        ["rspamd", "-f", "-i", "-u", "root", "-g", "root", "-c", str(root / "rspamd.conf"),
         f"--var=LOCAL_CONFDIR={root}", f"--var=DBDIR={root / 'db'}",
         f"--var=RUNDIR={root / 'run'}", f"--var=LOGDIR={root / 'log'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{scan}/ping", timeout=2) as r:
                    if r.read().strip() == b"pong":
                        break
            except OSError:
                pass
            if rspamd.poll() is not None or time.monotonic() > deadline:
                log = (root / "log" / "rspamd.log")
                raise RuntimeError("rspamd did not start: " + (
                    log.read_text()[-2000:] if log.exists() else "no log"))
            time.sleep(0.3)
        yield Rspamd(f"http://127.0.0.1:{scan}", f"http://127.0.0.1:{controller}", redis_port)
    finally:
        stop_processes(rspamd, redis)

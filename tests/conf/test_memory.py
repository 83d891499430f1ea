"""serve's malloc setting: argon2's working memory goes back to the system after a login wave."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.serve_process import REPO

WAVE = textwrap.dedent("""
    import re, sys
    from concurrent.futures import ThreadPoolExecutor
    from conf.memory import return_large_blocks_to_os
    from directory.passwords import PasswordHasher

    if sys.argv[1] == "set":
        assert return_large_blocks_to_os()
    def rss_mib():
        status = open("/proc/self/status").read()
        return int(re.search(r"VmRSS:\\s+(\\d+)", status).group(1)) / 1024
    hasher = PasswordHasher()
    before = rss_mib()
    with ThreadPoolExecutor(6) as pool:  # the size of asyncio's default pool on 2 cores
        list(pool.map(lambda _: hasher.hash_sync("ein Passwort"), range(36)))
        print(rss_mib() - before)
""")


def held_after_wave(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", WAVE, mode], cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return float(out.strip())


def test_argon2_memory_is_returned_with_the_setting_and_held_without() -> None:
    # Without it glibc keeps about 19 MiB in each hashing thread's arena.
    assert held_after_wave("keep") > 40
    assert held_after_wave("set") < 10


SETTLED = textwrap.dedent("""
    import gc
    from conf.commands.school import settle_heap
    young, middle, _old = gc.get_threshold()
    settle_heap()
    assert gc.get_freeze_count() > 0  # the start-up heap is out of the collector's way
    assert gc.get_threshold() == (young, middle, 100), gc.get_threshold()
""")


def test_started_serve_collects_the_oldest_generation_seldom() -> None:
    # Full collections stalled the event loop 29-105 ms each under the sliding sync bench.
    subprocess.run([sys.executable, "-c", SETTLED], cwd=REPO, check=True, timeout=120)

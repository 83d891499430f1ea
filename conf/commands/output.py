"""Plain, script-friendly output shared by the admin commands."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from directory.audit import COMMAND_LINE, Actor


def cli_actor() -> Actor:
    """Who acts on the command line for the audit log: the system user running it."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's bare uid)
        name = "unknown"
    return Actor(f"cli:{name}"[:64], COMMAND_LINE)


def write_new_private_file(path: Path, data: bytes) -> None:
    """``data`` into a new file only its owner may read (never over an existing one:
    it may hold passwords not handed out yet); raises OSError."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask says
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)


def fail(message: str) -> int:
    """Report a refused command the way conf.cli reports directory errors."""
    print(f"schulhof: {message}", file=sys.stderr)
    return 1


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Columns padded to their widest cell; the last column (free text) is not padded.

    Empty cells print as ``-`` so every line splits into the same fields on
    whitespace up to the last column.
    """
    table = [list(headers), *([str(cell) if cell not in ("", None) else "-" for cell in row]
                              for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        print("  ".join([*cells, line[-1]]))

"""The list of initial passwords for new accounts: a CSV only its owner may read.

Created with ``O_EXCL`` and mode 0600 (never an existing file: an earlier list
that was not handed out yet must not be lost), written and fsynced before the
import commits, removed again when the import fails.  Plain UTF-8, ``,``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path

from directory.importer.errors import ImportFileError

COLUMNS = ("login", "email", "first_name", "last_name", "role", "class", "initial_password")


class PasswordsFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ImportFileError(f"{path} exists; name a new file for the passwords "
                                  "(an earlier list is never overwritten)") from None
        except OSError as exc:
            raise ImportFileError(f"cannot create {path}: {exc.strerror}") from None
        os.fchmod(self._fd, 0o600)  # whatever the umask says

    def write(self, rows: Iterable[tuple[str, ...]]) -> None:
        """Write the header and ``rows`` (in ``COLUMNS`` order) and fsync."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
        data = buffer.getvalue().encode("utf-8")
        while data:
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

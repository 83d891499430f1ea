"""Errors of the bulk import: an unreadable file, or a readable file with bad rows."""

from __future__ import annotations

from dataclasses import dataclass

from directory.model import DirectoryError


class ImportFileError(DirectoryError):
    """The file cannot be imported; nothing was changed."""


@dataclass(frozen=True, order=True)
class RowError:
    """One bad row: its line in the file (1 = the header) and why it is bad."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class InvalidImportFile(ImportFileError):
    """Rows that cannot be imported; the whole file was refused, every bad row is listed."""

    def __init__(self, errors: list[RowError] | tuple[RowError, ...]) -> None:
        self.errors = tuple(sorted(errors))
        count = len(self.errors)
        super().__init__(f"{count} bad row{'s' if count != 1 else ''}, nothing imported")

"""Errors of the bulk import: an unreadable file, or a readable file with bad rows.

Each error carries an English ``reason`` (the command line prints it) and a
``code`` with the ``values`` it names, so a front end can say the same in its
own language (the admin pages: German, and English through their catalog).
``REASONS`` holds every code with its English wording.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from directory.model import DirectoryError

# code -> the English reason (%-style: %(value)r quotes like Python's repr).
REASONS: dict[str, str] = {
    # the header and the rows (records)
    "duplicate_column": "columns %(first)s and %(second)s both give %(field)r",
    "missing_columns": "missing required column%(plural)s: %(fields)s (header: %(header)s)",
    "short_row": "only %(count)s fields, missing %(fields)s",
    "long_row": "%(count)s fields, but the header has %(width)s",
    "no_rows": "the file has no rows to import",
    "control_characters": "%(field)s contains control characters",
    "empty_field": "empty %(field)s",
    "long_field": "%(field)s longer than %(max)s characters",
    "long_names": "first_name and last_name together longer than %(max)s characters",
    "unknown_role": "unknown role %(value)r (known: %(known)s)",
    "class_no_name": "class %(value)r gives no usable group name",
    "course_no_name": "course %(value)r gives no usable group name",
    "class_bad_address": "class %(value)r gives no valid group address (%(name)r)",
    "course_bad_address": "course %(value)r gives no valid group address (%(name)r)",
    "pupil_classes": "a pupil is in one class, not %(count)s",
    "parent_of_role": "parent_of is given, but the role is %(role)s, not parent",
    "bad_email": "email %(value)r is not an e-mail address",
    "duplicate_external_id": "duplicate external_id %(value)r (first on line %(first)s)",
    "parent_of_unknown": "parent_of %(value)r: no row has this external_id",
    "parent_of_not_pupil": "parent_of %(value)r: line %(target)s is a %(role)s, not a pupil",
    "course_is_class": "course %(value)r has the address %(name)r of a class (line "
                       "%(target)s)",
    # the file against the directory (planning); holder: account, alias or group
    "class_address_taken": "class %(value)r: its group address %(name)r is already used "
                           "by %(holder_text)s",
    "course_address_taken": "course %(value)r: its group address %(name)r is already used "
                            "by %(holder_text)s",
    # the whole file (reading, service)
    "not_utf8_or_cp1252": "the file is neither UTF-8 nor Windows-1252 (byte 0x%(byte)s at "
                          "offset %(offset)s); save it from the school program as CSV (UTF-8)",
    "bad_utf8": "the file is not valid UTF-8 (it starts with a BOM): bad byte at offset "
                "%(offset)s",
    "bad_utf16": "the file is not valid UTF-16 (it starts with a BOM): bad byte at offset "
                 "%(offset)s",
    "nul_characters": "the file contains NUL characters: it is not a CSV text file",
    "empty_file": "the file is empty",
    "too_many_lines": "the file has %(count)s lines; at most %(max)s people are imported "
                      "at once",
    "unreadable_csv": "line %(line)s: not readable as CSV (%(detail)s)",
    "no_header": "the file has no header line (only separators)",
    "directory_changed": "the directory changed during the import; run it again",
}


def _values(values: dict[str, object]) -> tuple[tuple[str, str], ...]:
    return tuple((name, str(value)) for name, value in values.items())


class ImportFileError(DirectoryError):
    """The file cannot be imported; nothing was changed."""

    code: str = ""
    values: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, code: str, **values: object) -> ImportFileError:
        error = cls(REASONS[code] % values)
        error.code, error.values = code, _values(values)
        return error


@dataclass(frozen=True, order=True)
class RowError:
    """One bad row: its line in the file (1 = the header) and why it is bad."""

    line: int
    reason: str
    code: str = field(default="", compare=False)
    values: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, line: int, code: str, **values: object) -> RowError:
        return cls(line, REASONS[code] % values, code, _values(values))

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class InvalidImportFile(ImportFileError):
    """Rows that cannot be imported; the whole file was refused, every bad row is listed."""

    def __init__(self, errors: list[RowError] | tuple[RowError, ...]) -> None:
        self.errors = tuple(sorted(errors))
        count = len(self.errors)
        super().__init__(f"{count} bad row{'s' if count != 1 else ''}, nothing imported")

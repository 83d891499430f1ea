"""Reading: the bytes of a CSV export -> decoded rows with their line numbers.

School administration programs write UTF-8 (with or without a BOM, the
latter from Excel), Windows-1252 (older Windows programs and Excel's "CSV"),
and sometimes UTF-16 ("Unicode text").  The separator is ``;`` (German Excel)
or ``,``, sometimes a tab.  Nothing here knows what the columns mean.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from dataclasses import dataclass

from directory.importer.errors import ImportFileError

DELIMITERS = (";", ",", "\t")
# Far above any school (3,000 people and their parents); a file beyond is the wrong
# file (a database dump), and checking it line by line would hold the server up.
MAX_LINES = 50_000


@dataclass(frozen=True)
class CsvRow:
    line: int  # where the row starts in the file; the header is line 1 of a plain file
    fields: tuple[str, ...]


@dataclass(frozen=True)
class CsvTable:
    encoding: str
    delimiter: str
    header_line: int
    header: tuple[str, ...]
    rows: tuple[CsvRow, ...]


def decode(data: bytes) -> tuple[str, str]:
    """The text of ``data`` and the name of the encoding it was read as."""
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[len(codecs.BOM_UTF8):], "utf-8", "bad_utf8"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, "utf-16", "bad_utf16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise ImportFileError.of("not_utf8_or_cp1252", byte=f"{data[exc.start]:02x}",
                                 offset=exc.start) from None


def _strict(data: bytes, encoding: str, code: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ImportFileError.of(code, offset=exc.start) from None


def detect_delimiter(header_line: str) -> str:
    """The separator that splits the header line most often (``;`` on a tie)."""
    counts = {d: len(_split_once(header_line, d)) for d in DELIMITERS}
    return max(DELIMITERS, key=lambda d: counts[d])  # max keeps the first on a tie


def _split_once(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def read_csv(data: bytes) -> CsvTable:
    """Decode ``data`` and split it into a header and rows.

    Blank lines are skipped; every row keeps the line number it starts on so
    errors can name it.  Raises ``ImportFileError`` for anything unreadable.
    """
    text, encoding = decode(data)
    if "\x00" in text:
        raise ImportFileError.of("nul_characters")
    text = unicodedata.normalize("NFC", text)  # "u + ¨" from macOS -> "ü"
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ImportFileError.of("empty_file")
    if len(lines) > MAX_LINES + 1:  # + the header
        raise ImportFileError.of("too_many_lines", count=len(lines), max=MAX_LINES)
    # The header: the first line with a letter or digit (not a line of separators).
    delimiter = detect_delimiter(next((ln for ln in lines if any(c.isalnum() for c in ln)),
                                      lines[0]))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    header: tuple[str, ...] | None = None
    header_line = 0
    rows: list[CsvRow] = []
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            fields = tuple(field.strip() for field in record)
            if not any(fields):
                continue
            if header is None:
                header, header_line = fields, start
            else:
                rows.append(CsvRow(start, fields))
    except csv.Error as exc:
        raise ImportFileError.of("unreadable_csv", line=line, detail=exc) from None
    if header is None:
        raise ImportFileError.of("no_header")
    return CsvTable(encoding, delimiter, header_line, header, tuple(rows))

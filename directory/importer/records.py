"""Validation: decoded rows -> typed ``ImportRecord`` values, or every bad row at once.

Checks only what the file itself shows (the planner checks the file against
the directory): required columns, names, roles, duplicate ids, ``parent_of``
pointing into the file, lengths the database accepts, and class and course
names that make usable group addresses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from directory.addresses import is_valid_local_part
from directory.importer.errors import InvalidImportFile, RowError
from directory.importer.profiles import FIELDS, REQUIRED_FIELDS, ImportProfile
from directory.importer.reading import CsvTable
from directory.login_names import transliterate
from directory.model import Role

MAX_NAME = 100  # accounts.first_name / last_name
MAX_DISPLAY_NAME = 200  # accounts.display_name ("first last")
MAX_EXTERNAL_ID = 100  # accounts.external_id
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Problem = tuple[str, dict[str, object]]  # a RowError's code and values, before its line


@dataclass(frozen=True)
class GroupRef:
    """A class or course as the file names it and the group address it gets."""

    name: str  # the group's address local part, e.g. "5a", "ma-lk1"
    display_name: str  # as written in the file, e.g. "5a", "Ma LK1"


@dataclass(frozen=True)
class ImportRecord:
    line: int
    external_id: str
    first_name: str
    last_name: str
    role: Role
    classes: tuple[GroupRef, ...] = ()  # a pupil's one class; the classes a teacher leads
    courses: tuple[GroupRef, ...] = ()
    email: str = ""
    parent_of: tuple[str, ...] = ()  # external ids of a parent's children

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def class_name(self) -> str | None:
        return self.classes[0].name if self.classes else None


def group_name(text: str) -> str:
    """``"Ma LK1"`` -> ``"ma-lk1"``: lower case ASCII, other characters become ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", transliterate(text).lower()).strip("-")


def column_map(table: CsvTable, profile: ImportProfile) -> dict[str, int]:
    """field -> column index; raises ``InvalidImportFile`` for a bad header."""
    columns: dict[str, int] = {}
    errors: list[RowError] = []
    for index, header in enumerate(table.header):
        field = profile.field_of(header)
        if field is None:
            continue  # other columns of the export (birthday, street, ...) are ignored
        if field in columns:
            errors.append(RowError.of(table.header_line, "duplicate_column",
                                      first=columns[field] + 1, second=index + 1, field=field))
        else:
            columns[field] = index
    missing = [f for f in REQUIRED_FIELDS if f not in columns]
    if missing:
        errors.append(RowError.of(table.header_line, "missing_columns",
                                  plural="s" if len(missing) > 1 else "",
                                  fields=", ".join(missing),
                                  header=", ".join(table.header)[:200]))
    if errors:
        raise InvalidImportFile(errors)
    return columns


def validate(table: CsvTable, profile: ImportProfile) -> list[ImportRecord]:
    """Every row as an ``ImportRecord``, or ``InvalidImportFile`` naming every bad row."""
    columns = column_map(table, profile)
    width = len(table.header)
    records: list[ImportRecord] = []
    errors: list[RowError] = []
    for row in table.rows:
        values = {f: row.fields[i] if i < len(row.fields) else None for f, i in columns.items()}
        problems: list[Problem] = []
        short = [f for f in REQUIRED_FIELDS if values[f] is None]
        if short:
            problems.append(("short_row", {"count": len(row.fields), "fields": ", ".join(short)}))
        elif any(row.fields[width:]):
            problems.append(("long_row", {"count": len(row.fields), "width": width}))
        else:
            record = _record(row.line, {f: v or "" for f, v in values.items()}, profile,
                             problems)
            if record is not None and not problems:
                records.append(record)
        errors.extend(RowError.of(row.line, code, **values) for code, values in problems)
    errors.extend(_cross_check(records))
    if errors:
        raise InvalidImportFile(errors)
    if not records:
        raise InvalidImportFile([RowError.of(table.header_line, "no_rows")])
    return records


def _record(line: int, values: dict[str, str], profile: ImportProfile,
            problems: list[Problem]) -> ImportRecord | None:
    for field in FIELDS:
        if _CONTROL.search(values.get(field, "")):
            problems.append(("control_characters", {"field": field}))
    external_id = values["external_id"]
    if not external_id:
        problems.append(("empty_field", {"field": "external_id"}))
    elif len(external_id) > MAX_EXTERNAL_ID:
        problems.append(("long_field", {"field": "external_id", "max": MAX_EXTERNAL_ID}))
    for field in ("first_name", "last_name"):
        if not values[field]:
            problems.append(("empty_field", {"field": field}))
        elif len(values[field]) > MAX_NAME:
            problems.append(("long_field", {"field": field, "max": MAX_NAME}))
    if len(values["first_name"]) + len(values["last_name"]) + 1 > MAX_DISPLAY_NAME:
        problems.append(("long_names", {"max": MAX_DISPLAY_NAME - 1}))
    role = profile.role_of(values["role"])
    if role is None:
        known = ", ".join(sorted({r.value for r in profile.role_values.values()}))
        problems.append(("unknown_role", {"value": values["role"], "known": known}))
    sep = profile.list_separator
    classes = _group_refs(values["class"], sep, "class", problems)
    courses = _group_refs(values.get("courses", ""), sep, "course", problems)
    if role is Role.PUPIL and len(classes) > 1:
        problems.append(("pupil_classes", {"count": len(classes)}))
    if role is Role.PARENT:
        classes = courses = ()  # a parent's row may repeat the child's class: not theirs
    parent_of = tuple(dict.fromkeys(p.strip() for p in values.get("parent_of", "").split(sep)
                                    if p.strip()))
    if parent_of and role is not Role.PARENT and role is not None:
        problems.append(("parent_of_role", {"role": role.value}))
    email = values.get("email", "")
    if email and not _EMAIL.match(email):
        problems.append(("bad_email", {"value": email}))
    if problems or role is None:
        return None
    return ImportRecord(line=line, external_id=external_id, first_name=values["first_name"],
                        last_name=values["last_name"], role=role, classes=classes,
                        courses=courses, email=email.lower(), parent_of=parent_of)


def _group_refs(text: str, sep: str, what: str, problems: list[Problem]
                ) -> tuple[GroupRef, ...]:
    refs: dict[str, GroupRef] = {}
    for part in text.split(sep):
        part = part.strip()
        if not part:
            continue
        name = group_name(part)
        if not name:
            problems.append((f"{what}_no_name", {"value": part}))
        elif not is_valid_local_part(name):  # longer than 64 characters
            problems.append((f"{what}_bad_address", {"value": part, "name": name}))
        else:
            refs.setdefault(name, GroupRef(name, part))
    return tuple(refs.values())


def _cross_check(records: list[ImportRecord]) -> list[RowError]:
    """What no single row shows: duplicates, parent_of targets, class/course clashes."""
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    for record in records:
        if record.external_id in first_line:
            errors.append(RowError.of(record.line, "duplicate_external_id",
                                      value=record.external_id,
                                      first=first_line[record.external_id]))
        else:
            first_line[record.external_id] = record.line
    by_id = {r.external_id: r for r in records}
    for record in records:
        for child in record.parent_of:
            target = by_id.get(child)
            if target is None:
                errors.append(RowError.of(record.line, "parent_of_unknown", value=child))
            elif target.role is not Role.PUPIL:
                errors.append(RowError.of(record.line, "parent_of_not_pupil", value=child,
                                          target=target.line, role=target.role.value))
    class_lines = {g.name: r.line for r in records for g in r.classes}
    for record in records:
        for course in record.courses:
            if course.name in class_lines:
                errors.append(RowError.of(record.line, "course_is_class",
                                          value=course.display_name, name=course.name,
                                          target=class_lines[course.name]))
    return errors

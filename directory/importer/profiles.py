"""Column and role mappings of the CSV exports of school administration software.

A profile says which header names mean which field and which role values mean
which role.  Headers and values are compared after ``normalise_key`` (case,
accents, spaces, ``-`` and ``_`` do not matter), so ``External-ID``,
``external_id`` and ``EXTERNAL ID`` are one header and ``Schüler``,
``Schueler`` and ``SCHÜLER`` one role.  Another program's export is supported
by adding a profile here and naming it in the settings (``import.profile``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from directory.importer.errors import ImportFileError
from directory.login_names import transliterate
from directory.model import Role

# The fields of an import record; the first five must be columns of every file.
REQUIRED_FIELDS = ("external_id", "first_name", "last_name", "role", "class")
OPTIONAL_FIELDS = ("courses", "email", "parent_of")
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS


def normalise_key(text: str) -> str:
    """``"Schüler-Innen "`` -> ``"schuelerinnen"``: what headers and role values match on."""
    return re.sub(r"[^a-z0-9]+", "", transliterate(text).lower())


@dataclass(frozen=True)
class ImportProfile:
    """How one program's export names its columns and roles."""

    name: str
    # field -> header names that mean it (the field's own name always does)
    columns: tuple[tuple[str, tuple[str, ...]], ...]
    # role -> values of the role column that mean it
    roles: tuple[tuple[Role, tuple[str, ...]], ...]
    # separates several values in one field (courses, parent_of)
    list_separator: str = "|"

    @cached_property
    def header_fields(self) -> dict[str, str]:
        """normalised header name -> field."""
        lookup = {normalise_key(field): field for field in FIELDS}
        for field, aliases in self.columns:
            for alias in aliases:
                lookup[normalise_key(alias)] = field
        return lookup

    @cached_property
    def role_values(self) -> dict[str, Role]:
        """normalised role value -> role."""
        return {normalise_key(value): role
                for role, values in self.roles for value in (role.value, *values)}

    def field_of(self, header: str) -> str | None:
        return self.header_fields.get(normalise_key(header))

    def role_of(self, value: str) -> Role | None:
        return self.role_values.get(normalise_key(value))


GENERIC = ImportProfile(
    name="generic",
    columns=(
        ("external_id", ("id", "externe id", "external id")),
        ("first_name", ("vorname", "firstname", "given name")),
        ("last_name", ("nachname", "lastname", "surname", "family name")),
        ("role", ("rolle", "typ", "type")),
        ("class", ("klasse", "class name")),
        ("courses", ("kurse", "course", "kurs")),
        ("email", ("e-mail", "mail", "e-mail-adresse")),
        ("parent_of", ("eltern von", "kinder", "children")),
    ),
    roles=(
        (Role.PUPIL, ("schüler", "schülerin", "sus", "student", "students", "pupils")),
        (Role.TEACHER, ("lehrer", "lehrerin", "lehrkraft", "lul", "teachers")),
        (Role.PARENT, ("eltern", "elternteil", "erziehungsberechtigt",
                       "erziehungsberechtigte", "erziehungsberechtigter", "mutter", "vater",
                       "guardian", "parents")),
        (Role.STAFF, ("personal", "mitarbeiter", "mitarbeiterin", "verwaltung")),
    ),
)

PROFILES: dict[str, ImportProfile] = {GENERIC.name: GENERIC}


def profile_named(name: str) -> ImportProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ImportFileError(f"unknown import profile {name!r} (known: "
                              f"{', '.join(sorted(PROFILES))})") from None

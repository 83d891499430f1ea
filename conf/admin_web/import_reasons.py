"""Why an import file or row was refused, in the admin's language.

The importer (``directory.importer.errors``) names each problem by a code with
its values and an English reason for the command line; here each code has its
German wording (the source language; English through the catalog).  A code
without a wording here shows the English reason (a test keeps the two lists
equal).
"""

from __future__ import annotations

from collections.abc import Callable

from directory.importer import ImportFileError, RowError
from mailserver.webmail.i18n import N_

Translate = Callable[[str], str]

WORDING: dict[str, str] = {
    "duplicate_column": N_("Die Spalten %(first)s und %(second)s geben beide „%(field)s“ an."),
    "missing_columns": N_("Pflichtspalten fehlen: %(fields)s (Kopfzeile: %(header)s)."),
    "short_row": N_("Nur %(count)s Felder, es fehlt: %(fields)s."),
    "long_row": N_("%(count)s Felder, die Kopfzeile hat aber %(width)s."),
    "no_rows": N_("Die Datei enthält keine Zeilen zum Importieren."),
    "control_characters": N_("%(field)s enthält Steuerzeichen."),
    "empty_field": N_("%(field)s ist leer."),
    "long_field": N_("%(field)s ist länger als %(max)s Zeichen."),
    "long_names": N_("Vor- und Nachname sind zusammen länger als %(max)s Zeichen."),
    "unknown_role": N_("Unbekannte Rolle „%(value)s“ (bekannt: %(known)s)."),
    "class_no_name": N_("Aus der Klasse „%(value)s“ ergibt sich kein Gruppenname."),
    "course_no_name": N_("Aus dem Kurs „%(value)s“ ergibt sich kein Gruppenname."),
    "class_bad_address": N_("Aus der Klasse „%(value)s“ ergibt sich keine gültige "
                            "Gruppenadresse („%(name)s“)."),
    "course_bad_address": N_("Aus dem Kurs „%(value)s“ ergibt sich keine gültige "
                             "Gruppenadresse („%(name)s“)."),
    "pupil_classes": N_("Eine Schülerin oder ein Schüler ist in einer Klasse, nicht in "
                        "%(count)s."),
    "parent_of_role": N_("parent_of ist angegeben, die Rolle ist aber %(role)s, nicht "
                         "Eltern."),
    "bad_email": N_("„%(value)s“ ist keine E-Mail-Adresse."),
    "duplicate_external_id": N_("Die external_id „%(value)s“ kommt doppelt vor (zuerst in "
                                "Zeile %(first)s)."),
    "parent_of_unknown": N_("parent_of „%(value)s“: Keine Zeile hat diese external_id."),
    "parent_of_not_pupil": N_("parent_of „%(value)s“: Zeile %(target)s ist %(role)s, "
                              "kein Kind."),
    "course_is_class": N_("Der Kurs „%(value)s“ hätte die Adresse „%(name)s“ einer Klasse "
                          "(Zeile %(target)s)."),
    "class_address_taken": N_("Klasse „%(value)s“: Die Gruppenadresse „%(name)s“ gehört "
                              "schon %(holder)s."),
    "course_address_taken": N_("Kurs „%(value)s“: Die Gruppenadresse „%(name)s“ gehört "
                               "schon %(holder)s."),
    "not_utf8_or_cp1252": N_("Die Datei ist weder UTF-8 noch Windows-1252 (Byte 0x%(byte)s "
                             "an Stelle %(offset)s). Bitte im Schulverwaltungsprogramm als "
                             "CSV (UTF-8) speichern."),
    "bad_utf8": N_("Die Datei ist kein gültiges UTF-8 (sie beginnt mit einer BOM): "
                   "falsches Byte an Stelle %(offset)s."),
    "bad_utf16": N_("Die Datei ist kein gültiges UTF-16 (sie beginnt mit einer BOM): "
                    "falsches Byte an Stelle %(offset)s."),
    "nul_characters": N_("Die Datei enthält NUL-Zeichen: Sie ist keine CSV-Textdatei."),
    "empty_file": N_("Die Datei ist leer."),
    "too_many_lines": N_("Die Datei hat %(count)s Zeilen; höchstens %(max)s Personen "
                         "werden auf einmal importiert."),
    "unreadable_csv": N_("Zeile %(line)s lässt sich nicht als CSV lesen (%(detail)s)."),
    "no_header": N_("Die Datei hat keine Kopfzeile (nur Trennzeichen)."),
    "directory_changed": N_("Das Verzeichnis hat sich während des Imports geändert; bitte "
                            "noch einmal importieren."),
}

# Values that are words themselves: roles and who holds an address.
ROLES = {"pupil": N_("Schülerin/Schüler"), "teacher": N_("Lehrkraft"),
         "parent": N_("Elternteil"), "staff": N_("Mitarbeiterin/Mitarbeiter"),
         "admin": N_("Administration")}
HOLDERS = {"account": N_("einem Konto"), "alias": N_("einer weiteren Adresse"),
           "group": N_("einer anderen Gruppe")}


def explain(_: Translate, code: str, values: tuple[tuple[str, str], ...], english: str
            ) -> str:
    wording = WORDING.get(code)
    if wording is None:
        return english
    named = dict(values)
    if "role" in named:
        named["role"] = _(ROLES.get(named["role"], named["role"]))
    if "holder" in named:
        named["holder"] = _(HOLDERS.get(named["holder"], named["holder"]))
    return _(wording) % named


def row_reason(_: Translate, error: RowError) -> str:
    return explain(_, error.code, error.values, error.reason)


def file_reason(_: Translate, error: ImportFileError) -> str:
    return explain(_, error.code, error.values, str(error))

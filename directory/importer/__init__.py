"""Bulk import of pupils, teachers and parents from school administration CSV exports.

Layers, each testable alone: ``reading`` (bytes -> rows), ``records``
(rows -> ``ImportRecord`` or every bad row), ``planning`` (records + directory
state -> ``ImportPlan``, pure), ``applying`` (the plan in one transaction);
``service.Importer`` runs them and returns an ``ImportSummary``.
"""

from directory.importer.errors import ImportFileError, InvalidImportFile, RowError
from directory.importer.planning import ImportPlan
from directory.importer.profiles import GENERIC, ImportProfile, profile_named
from directory.importer.service import Importer, ImportSummary, InitialPassword

__all__ = [
    "GENERIC",
    "ImportFileError",
    "ImportPlan",
    "ImportProfile",
    "ImportSummary",
    "Importer",
    "InitialPassword",
    "InvalidImportFile",
    "RowError",
    "profile_named",
]

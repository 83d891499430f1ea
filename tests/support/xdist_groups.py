"""``--dist loadgroup`` that also keeps each module of tests/security on one worker.

The security tests of a module share one ``schulhof serve`` (module-scoped, 10-45 s
to start on a loaded machine); spread over two workers, or interleaved with other
modules on one, that process would be started again.  Grouping by an
``xdist_group`` marker does not work here (pytest-xdist 3 renames the item's
``_nodeid``, which pytest 9 no longer reads), so the controller groups these
tests by their file; every other test is scheduled alone, as with ``--dist load``.
"""

from __future__ import annotations

from xdist.scheduler import LoadGroupScheduling  # type: ignore[import-untyped]

#: Folders whose test files share a module-scoped server between their tests.
SHARED_SERVER_FOLDERS = ("tests/security/",)


class ModuleGroupScheduling(LoadGroupScheduling):
    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(SHARED_SERVER_FOLDERS):
            return nodeid.split("::", 1)[0]
        return super()._split_scope(nodeid)

"""``--dist loadgroup`` that also keeps each module with a shared server on one
worker, and the whole of tests/e2e/matrix_synapse on one worker.

The security tests of a module share one ``schulhof serve`` (module-scoped, 10-45 s
to start on a loaded machine), the sliding sync and push e2e tests one in-process
school (SHARED_SERVER_PATHS), the Synapse interop tests all one Synapse and two
in-process schools (package-scoped, 6-15 s; SHARED_SERVER_PACKAGES); spread over
two workers, or interleaved with other tests on one, that server would be started
again.  Grouping by an
``xdist_group`` marker does not work here (pytest-xdist 3 renames the item's
``_nodeid``, which pytest 9 no longer reads), so the controller groups these
tests by their file or folder; every other test is scheduled alone, as with
``--dist load``.
"""

from __future__ import annotations

from xdist.scheduler import LoadGroupScheduling  # type: ignore[import-untyped]

#: Folders, and files, whose test modules share a module-scoped server between their tests.
SHARED_SERVER_PATHS = ("tests/security/", "tests/e2e/test_matrix_sliding_sync.py",
                       "tests/e2e/test_element_x_requests.py", "tests/e2e/test_matrix_push.py")
#: Folders whose tests all share one package-scoped server.
SHARED_SERVER_PACKAGES = ("tests/e2e/matrix_synapse/",)


class ModuleGroupScheduling(LoadGroupScheduling):
    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(SHARED_SERVER_PACKAGES):
            return next(f for f in SHARED_SERVER_PACKAGES if nodeid.startswith(f))
        if nodeid.startswith(SHARED_SERVER_PATHS):
            return nodeid.split("::", 1)[0]
        return super()._split_scope(nodeid)

"""The controller's grouping for ``--dist loadgroup`` (tests/support/xdist_groups.py)."""

from __future__ import annotations

from tests.support.xdist_groups import ModuleGroupScheduling


def _scope(nodeid: str) -> str:
    # _split_scope reads nothing from the scheduler's state: no controller needed.
    return ModuleGroupScheduling._split_scope(object.__new__(ModuleGroupScheduling), nodeid)


def test_security_tests_are_grouped_by_module() -> None:
    assert (_scope("tests/security/test_imap_limits.py::test_a")
            == _scope("tests/security/test_imap_limits.py::test_b")
            == "tests/security/test_imap_limits.py")


def test_synapse_interop_tests_are_one_group() -> None:
    assert (_scope("tests/e2e/matrix_synapse/test_rooms.py::test_a")
            == _scope("tests/e2e/matrix_synapse/test_media.py::test_b")
            == "tests/e2e/matrix_synapse/")


def test_other_tests_are_scheduled_alone() -> None:
    assert _scope("tests/e2e/test_matrix_nio.py::test_a") == "tests/e2e/test_matrix_nio.py::test_a"
    assert _scope("tests/e2e/matrix_federation/test_x.py::test_a") != _scope(
        "tests/e2e/matrix_federation/test_x.py::test_b")

"""Helpers for the Matrix security tests; the raw client itself is tests/support/matrix_http.py."""

from __future__ import annotations

from conf.app import School
from messenger.server import MatrixServer
from tests.support.matrix_http import PASSWORD, V3, RawClient

__all__ = ["DOMAIN", "PASSWORD", "V3", "RawClient", "matrix_server"]

DOMAIN = "schule.test"


def matrix_server(school: School) -> MatrixServer:
    return next(s for s in school.services if isinstance(s, MatrixServer))

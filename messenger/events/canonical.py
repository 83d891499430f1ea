"""Canonical JSON for events and client data.

The implementation lives in ``federation.matrix.canonical_json``: the
server-server API signs requests and server keys with the same canonical form,
and ``federation`` sits below ``messenger``.
"""

from federation.matrix.canonical_json import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    MIN_SAFE_INTEGER,
    CanonicalJsonError,
    canonical_json,
    check_canonical_value,
    parse_json,
)

__all__ = ["MAX_DEPTH", "MAX_SAFE_INTEGER", "MIN_SAFE_INTEGER", "CanonicalJsonError",
           "canonical_json", "check_canonical_value", "parse_json"]

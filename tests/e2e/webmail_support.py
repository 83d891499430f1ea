"""The webmail e2e fixtures and helpers, for ``from ... import *`` in the
feature test modules (a star import keeps pytest's fixtures and ruff apart)."""

from __future__ import annotations

from tests.e2e.test_webmail import (
    OUTSIDE,
    PASSWORDS,
    base_url,
    browser,
    csrf_of,
    deliver,
    flags_of,
    incoming,
    log_in,
    login_form,
    school_with_people,
    settings,
)

__all__ = ["OUTSIDE", "PASSWORDS", "base_url", "browser", "csrf_of", "deliver", "flags_of",
           "incoming", "log_in", "login_form", "school_with_people", "settings"]

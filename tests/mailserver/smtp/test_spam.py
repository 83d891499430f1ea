"""rspamd verdicts to SMTP consequences (mailserver.smtp.spam.decide)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.rspamd import ScanResult
from mailserver.smtp.spam import decide


def result(action: str, message: str = "", score: float = 3.0) -> ScanResult:
    return ScanResult(action, score, 15.0, ("A", "B"), message)


@pytest.mark.parametrize(("action", "reply", "quarantine"), [
    ("reject", "550 5.7.1 Gtube pattern", False),
    ("soft reject", "451 4.7.1 Gtube pattern", False),
    ("greylist", "451 4.7.1 Gtube pattern", False),
    ("add header", None, True),
    ("rewrite subject", None, True),
    ("no action", None, False),
])
def test_actions(action: str, reply: str | None, quarantine: bool) -> None:
    decision = decide(result(action, "Gtube pattern"))
    assert decision.reply == reply and decision.quarantine is quarantine
    if reply is None:
        assert decision.headers.startswith(b"X-Spam") and decision.headers.endswith(b"\r\n")


@settings(deadline=None)  # the machine may be busy: no per-example deadline
@given(st.text(max_size=200), st.floats(allow_nan=False, allow_infinity=False, width=32),
       st.lists(st.text(max_size=20), max_size=5))
def test_reply_and_headers_are_single_ascii_lines(message: str, score: float,
                                                  symbols: list[str]) -> None:
    for action in ("reject", "greylist", "add header", "no action"):
        decision = decide(ScanResult(action, score, 15.0, tuple(symbols), message))
        if decision.reply is not None:
            assert decision.reply.isascii() and "\r" not in decision.reply \
                and "\n" not in decision.reply
        lines = decision.headers.split(b"\r\n")
        assert lines[-1] == b"" and all(b"\n" not in line and b"\r" not in line
                                        for line in lines)

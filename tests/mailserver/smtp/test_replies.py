"""Enhanced status codes on aiosmtpd's own replies (RFC 2034, RFC 3463) and error counting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailserver.smtp import replies


@pytest.mark.parametrize(("raw", "enhanced"), [
    ("250 OK", "250 2.0.0 OK"),
    ("221 Bye", "221 2.0.0 Bye"),
    ("220 Ready to start TLS", "220 2.0.0 Ready to start TLS"),
    ("503 Error: need MAIL command", "503 5.5.1 need MAIL command"),
    ("503 Error: nested MAIL command", "503 5.5.1 nested MAIL command"),
    ("500 Command line too long", "500 5.5.2 Command line too long"),
    ("500 Line too long (see RFC5321 4.5.3.1.6)",
     "500 5.5.2 Line too long (see RFC5321 4.5.3.1.6)"),
    ("501 Syntax: MAIL FROM: <address>", "501 5.5.4 Syntax: MAIL FROM: <address>"),
    ("530 Must issue a STARTTLS command first", "530 5.7.0 Must issue a STARTTLS command first"),
    ("552 Error: Too much mail data", "552 5.3.4 Too much mail data"),
    ("552 Error: message size exceeds fixed maximum message size",
     "552 5.3.4 message size exceeds fixed maximum message size"),
    ("553 5.1.3 Error: malformed address", "553 5.1.3 Error: malformed address"),
    ("538 5.7.11 Encryption required for requested authentication mechanism",
     "538 5.7.11 Encryption required for requested authentication mechanism"),
    # Never touched: greeting, EHLO lines (incl. the last one), continuations.
    ("220 mail.schule.test Schulhof ESMTP", "220 mail.schule.test Schulhof ESMTP"),
    ("250-SIZE 100", "250-SIZE 100"),
    ("250 ENHANCEDSTATUSCODES", "250 ENHANCEDSTATUSCODES"),
    ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
    ("334 ", "334 "),
])
def test_enhance(raw: str, enhanced: str) -> None:
    assert replies.enhance(raw) == enhanced


@given(st.integers(400, 599), st.text(alphabet="abc XYZ:", max_size=30))
def test_every_error_gets_a_matching_class(code: int, text: str) -> None:
    result = replies.enhance(f"{code} {text}")
    assert result.split(" ")[1][0] == str(code)[0]
    assert replies.enhance(result) == result  # idempotent


@pytest.mark.parametrize(("reply", "counts"), [
    ("500 5.5.2 x", True), ("535 5.7.8 x", True), ("550 5.1.1 x", True), ("454 4.7.0 x", True),
    ("552 5.3.4 x", False), ("452 4.5.3 x", False), ("451 4.3.0 x", False),
    ("421 4.7.0 x", False), ("250 2.0.0 OK", False),
])
def test_counts_as_error(reply: str, counts: bool) -> None:
    assert replies.counts_as_error(reply) is counts

"""Assertions on mail that crossed from one school to another (parsed, compat32 messages).

Both federation e2e tests (schools in one process, schools as server processes)
check the same things about what arrived: whose DKIM signature it carries, what
the receiving MX's Authentication-Results say, how the last hop came in, the
shape of a bounce (RFC 3464), and that DMARC turns a forgery away.
"""

from __future__ import annotations

import email.message

import aiosmtplib
import pytest
from aiosmtplib.smtp import DEFAULT_TIMEOUT

from tests.support.smtp_clients import make_message

ALL_AUTH_METHODS = ("dkim", "spf", "dmarc")


def assert_delivered(message: email.message.Message, *, marker: str, signed_by: str) -> None:
    """The message is the one sent (its X-Test-Id) and signed with ``signed_by``'s DKIM key."""
    assert message["X-Test-Id"] == marker
    assert f"d={signed_by}" in message["DKIM-Signature"]


def assert_authentication_passed(message: email.message.Message, *,
                                 methods: tuple[str, ...] = ALL_AUTH_METHODS,
                                 authserv_id: str | None = None) -> None:
    """The receiving MX's Authentication-Results (RFC 8601) say ``method=pass`` for each
    of ``methods``; with ``authserv_id``, the field is that host's own."""
    results = message["Authentication-Results"] or ""
    if authserv_id is not None:
        assert results.startswith(authserv_id), results
    for method in methods:
        assert f"{method}=pass" in results, results


def assert_received_with_esmtps(message: email.message.Message) -> None:
    """The newest Received field (the receiving MX's) records the hop as ESMTPS (TLS)."""
    newest = (message.get_all("Received") or [""])[0]
    assert "with ESMTPS" in " ".join(newest.split()), newest


def assert_failure_dsn(dsn: email.message.Message, *, recipient: str, remote_mta: str,
                       original_subject: str) -> None:
    """A delivery status notification (RFC 3464) of a permanent failure for ``recipient``,
    refused by ``remote_mta``, that returns the original message's headers."""
    assert dsn.get_content_type() == "multipart/report"
    _, status, returned = dsn.get_payload()[:3]
    recipient_fields = status.get_payload()[1]
    assert recipient_fields["Final-Recipient"] == f"rfc822; {recipient}"
    assert recipient_fields["Action"] == "failed"
    assert recipient_fields["Status"].startswith("5.")
    assert recipient_fields["Remote-MTA"] == f"dns; {remote_mta}"
    assert original_subject in returned.get_payload()


async def assert_forgery_refused_by_dmarc(
        host: str, port: int, *, source_ip: str, sender: str, recipient: str,
        timeout: float = DEFAULT_TIMEOUT) -> aiosmtplib.SMTPDataError:
    """Send an unsigned message From ``sender`` straight to the MX at ``host``:``port``,
    from ``source_ip`` (an address the sender's SPF does not list); the MX must refuse
    it at DATA with 550, naming DMARC.  The refusal is returned for finer checks."""
    smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False,
                           source_address=(source_ip, 0), local_hostname="evil.test",
                           timeout=timeout)
    await smtp.connect()
    _, forged = make_message(sender=sender, to=[recipient], subject="forged")
    try:
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.sendmail(sender, [recipient], forged)
    finally:
        smtp.close()
    assert refused.value.code == 550 and "DMARC" in refused.value.message
    return refused.value

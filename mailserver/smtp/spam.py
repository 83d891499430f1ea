"""Spam filtering on the MX with rspamd, before the 250 (rspamd's actions:
https://rspamd.com/doc/configuration/metrics.html#actions).

``SpamFilter.check`` scans the message (``federation.rspamd``) and turns the
verdict into what the SMTP session does:

* ``reject`` -> ``550 5.7.1`` with rspamd's text (RFC 3463 5.7.1);
* ``soft reject`` and ``greylist`` -> ``451 4.7.1`` (the sender retries later);
* ``add header`` and ``rewrite subject`` -> ``X-Spam-*`` fields added and the
  message filed into Junk (the recipients' Sieve scripts then do not run);
* ``no action`` -> ``X-Spam-Status: No``.

When rspamd cannot be asked, ``fail_open`` (the default) accepts the mail
with ``X-Spam-Status: Unknown`` and a warning in the log; otherwise ``451``.
Header values are ours; a sender's own ``X-Spam-*`` fields are not removed
but ours come first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from federation.rspamd import (
    ADD_HEADER,
    GREYLIST,
    REJECT,
    REWRITE_SUBJECT,
    SOFT_REJECT,
    RspamdClient,
    RspamdError,
    ScanRequest,
    ScanResult,
)
from mailserver.smtp import replies

log = logging.getLogger("schulhof.spam")


@dataclass(frozen=True)
class SpamDecision:
    reply: str | None = None  # a refusal to answer instead of 250
    headers: bytes = b""  # fields to put on top of the message
    quarantine: bool = False  # file into Junk


class SpamFilter:
    def __init__(self, client: RspamdClient, *, fail_open: bool = True) -> None:
        self.client = client
        self.fail_open = fail_open

    async def check(self, message: bytes, request: ScanRequest) -> SpamDecision:
        try:
            result = await self.client.scan(message, request)
        except RspamdError as error:
            log.warning("event=spam_scan_failed reason=%s fail_open=%s", error, self.fail_open)
            if not self.fail_open:
                return SpamDecision(reply="451 4.7.0 Spam scan unavailable, try again later")
            return SpamDecision(headers=b"X-Spam-Status: Unknown (scan failed)\r\n")
        decision = decide(result)
        log.info("event=spam_scanned action=%s score=%.2f queue_id=%s",
                 result.action.replace(" ", "_"), result.score, request.queue_id)
        return decision


def _status(result: ScanResult, spam: bool) -> bytes:
    symbols = ",".join(result.symbols)[:700]
    flag = "Yes" if spam else "No"
    return (f"X-Spam-Status: {flag}, score={result.score:.2f} "
            f"required={result.required_score:.2f}\r\n"
            f"X-Spam-Score: {result.score:.2f}\r\n"
            f"X-Spam-Symbols: {replies.refused('', symbols).strip()}\r\n").encode(
                "ascii", "replace")


def decide(result: ScanResult) -> SpamDecision:
    """The SMTP consequence of an rspamd verdict (pure)."""
    if result.action == REJECT:
        text = result.message or "Message rejected as spam"
        return SpamDecision(reply=replies.refused("550 5.7.1", _ascii(text)))
    if result.action in (SOFT_REJECT, GREYLIST):
        text = result.message or "Try again later"
        return SpamDecision(reply=replies.refused("451 4.7.1", _ascii(text)))
    if result.action in (ADD_HEADER, REWRITE_SUBJECT):
        return SpamDecision(headers=b"X-Spam: Yes\r\n" + _status(result, True),
                            quarantine=True)
    return SpamDecision(headers=_status(result, False))


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")[:300]

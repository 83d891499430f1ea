"""A client of rspamd's HTTP protocol (https://rspamd.com/doc/developers/protocol.html):
``POST /checkv2`` on the normal worker to scan a message before the MX answers,
``POST /learnspam`` and ``/learnham`` on the controller to train the Bayes
classifier when users move mail into or out of Junk.

Here in ``federation`` because rspamd is another server we talk to; the
decision what to do with a verdict is the SMTP session's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
import orjson

log = logging.getLogger("schulhof.rspamd")

# rspamd's actions (protocol: "action"), in rising severity.
NO_ACTION, GREYLIST, ADD_HEADER, REWRITE_SUBJECT, SOFT_REJECT, REJECT = (
    "no action", "greylist", "add header", "rewrite subject", "soft reject", "reject")


class RspamdError(Exception):
    """rspamd could not be asked or gave no usable answer."""


@dataclass(frozen=True)
class ScanResult:
    action: str
    score: float
    required_score: float
    symbols: tuple[str, ...]
    message: str  # rspamd's text for the SMTP reply (messages.smtp_message), may be ""


@dataclass(frozen=True)
class ScanRequest:
    client_ip: str
    helo: str
    mail_from: str
    recipients: tuple[str, ...]
    queue_id: str = ""
    user: str = ""  # the authenticated login on submission


class RspamdClient:
    """``scan`` on the normal worker, ``learn`` on the controller; one HTTP
    session per client, created on first use (inside the running loop)."""

    def __init__(self, scan_url: str, controller_url: str = "", *, timeout: float = 15.0,
                 password: str = "") -> None:
        self.scan_url = scan_url.rstrip("/")
        self.controller_url = controller_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._password = password
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def scan(self, message: bytes, request: ScanRequest) -> ScanResult:
        """``/checkv2`` with the envelope as headers (protocol "HTTP headers")."""
        headers = {"IP": request.client_ip, "Helo": request.helo, "From": request.mail_from,
                   "Queue-Id": request.queue_id, "Pass": "none"}
        if request.user:
            headers["User"] = request.user
        items = list(headers.items()) + [("Rcpt", r) for r in request.recipients]
        try:
            async with self._http().post(f"{self.scan_url}/checkv2", data=message,
                                         headers=[(k, v) for k, v in items if v]) as response:
                body = await response.read()
                if response.status != 200:
                    raise RspamdError(f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise RspamdError(type(error).__name__) from error
        try:
            answer = orjson.loads(body)
            messages = answer.get("messages") or {}
            return ScanResult(
                action=str(answer["action"]), score=float(answer.get("score", 0.0)),
                required_score=float(answer.get("required_score", 0.0)),
                symbols=tuple(sorted(answer.get("symbols") or {})),
                message=str(messages.get("smtp_message", "")) if isinstance(messages, dict)
                else "")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise RspamdError("malformed answer") from e

    async def learn(self, message: bytes, *, spam: bool) -> bool:
        """``/learnspam`` or ``/learnham``; False when rspamd declined (already
        learned, too few tokens) or is unreachable (logged, never raised)."""
        if not self.controller_url:
            return False
        path = "learnspam" if spam else "learnham"
        headers = {"Password": self._password} if self._password else {}
        try:
            async with self._http().post(f"{self.controller_url}/{path}", data=message,
                                         headers=headers) as response:
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            log.warning("event=rspamd_learn_failed kind=%s reason=%s", path,
                        type(error).__name__)
            return False
        ok = response.status == 200 and b'"success":true' in body.replace(b" ", b"")
        if not ok:
            log.info("event=rspamd_learn_declined kind=%s status=%d", path, response.status)
        return ok

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

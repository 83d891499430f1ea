"""Delivery Status Notifications: the bounce and delay reports we send to a sender.

Pure functions, no I/O.  The format:

* RFC 6522 (was 3462): ``multipart/report; report-type=delivery-status``
  with a human-readable part, the machine-readable report, and the
  original message's header section (``text/rfc822-headers``; RFC 6522 4 lets
  a report return headers only, which is all a sender needs to recognise it);
* RFC 3464 2.2 / 2.3: the per-message fields (Reporting-MTA, Arrival-Date)
  and one block per recipient (Final-Recipient, Action, Status, Remote-MTA,
  Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until);
* RFC 3463 status codes; RFC 3834 5 ``Auto-Submitted: auto-replied`` so
  auto-responders stay quiet;
* RFC 6533: internationalised addresses (utf-8 address type,
  ``message/global-delivery-status`` and ``message/global-headers``).

Text coming from remote servers or the original message (diagnostics,
subjects) is reduced to one line, so it can never add a header field.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import quopri
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.header import Header, decode_header, make_header

FAILED, DELAYED = "failed", "delayed"
MAX_FIELD = 900  # stay well below the 998-octet line limit (RFC 5322 2.1.1)


@dataclass(frozen=True)
class DsnRecipient:
    """One recipient's block (RFC 3464 2.3)."""

    recipient: str
    action: str  # FAILED or DELAYED
    status: str  # RFC 3463 "5.1.1"
    diagnostic: str = ""  # the remote reply, e.g. "550 5.1.1 no such user"
    remote_mta: str = ""
    last_attempt: dt.datetime | None = None
    will_retry_until: dt.datetime | None = None


@dataclass(frozen=True)
class DsnReport:
    reporting_mta: str  # our host name
    postmaster: str  # the report's From address (MAILER-DAEMON@<domain>)
    sender: str  # the original envelope sender: the report goes to it
    original: bytes  # the original message (only its header section is used)
    arrival_date: dt.datetime
    recipients: tuple[DsnRecipient, ...]


def one_line(text: str, limit: int = MAX_FIELD) -> str:
    """Whitespace (CR, LF included) collapsed, other control characters dropped, cut."""
    cleaned = "".join(c if c.isprintable() or c.isspace() else " " for c in text)
    return " ".join(cleaned.split())[:limit]


def ascii_line(text: str, limit: int = MAX_FIELD) -> str:
    """:func:`one_line`, with non-ASCII shown as backslash escapes (remote reply texts)."""
    return one_line(text, limit).encode("ascii", "backslashreplace").decode("ascii")[:limit]


def header_section(message: bytes) -> bytes:
    """The header section of ``message`` with CRLF line ends, ending in one empty line.

    A message without a body separator is all header (RFC 5322 2.1).
    """
    normalised = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    head, sep, _ = normalised.partition(b"\n\n")
    if not sep and not normalised.endswith(b"\n"):
        head = normalised
    lines = [line for line in head.split(b"\n") if line]
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def original_subject(headers: bytes) -> str:
    """The decoded Subject of the original header section ("" if none)."""
    lines = headers.decode("utf-8", "replace").split("\r\n")
    value: list[str] = []
    for line in lines:
        if value and line[:1] in (" ", "\t"):
            value.append(line)
        elif value:
            break
        elif line.lower().startswith("subject:"):
            value.append(line[len("subject:"):])
    raw = "".join(value)
    try:
        return one_line(str(make_header(decode_header(raw))))
    except (ValueError, LookupError):  # a broken encoded-word: show it undecoded
        return one_line(raw)


def _address_type(address: str) -> str:
    return "rfc822" if address.isascii() else "utf-8"  # RFC 6533 3


def _date(value: dt.datetime) -> str:
    return email.utils.format_datetime(value.astimezone(dt.UTC))


def _fields(pairs: Sequence[tuple[str, str]]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in pairs)


def status_fields(report: DsnReport) -> bytes:
    """The message/delivery-status body (RFC 3464 2.1): per-message, then per-recipient."""
    blocks = [_fields([("Reporting-MTA", f"dns; {ascii_line(report.reporting_mta)}"),
                       ("Arrival-Date", _date(report.arrival_date))])]
    for r in report.recipients:
        fields = [("Final-Recipient", f"{_address_type(r.recipient)}; {one_line(r.recipient)}"),
                  ("Action", r.action), ("Status", one_line(r.status, 16))]
        if r.remote_mta:
            fields.append(("Remote-MTA", f"dns; {ascii_line(r.remote_mta)}"))
        if r.diagnostic:
            fields.append(("Diagnostic-Code", f"smtp; {ascii_line(r.diagnostic)}"))
        if r.last_attempt is not None:
            fields.append(("Last-Attempt-Date", _date(r.last_attempt)))
        if r.will_retry_until is not None:
            fields.append(("Will-Retry-Until", _date(r.will_retry_until)))
        blocks.append(_fields(fields))
    return b"\r\n".join(blocks)


def _human_text(report: DsnReport, subject: str) -> str:
    failed = [r for r in report.recipients if r.action == FAILED]
    delayed = [r for r in report.recipients if r.action == DELAYED]
    lines = [f"Dies ist eine automatische Nachricht von {one_line(report.reporting_mta)}.",
             f"This is an automatic message from {one_line(report.reporting_mta)}.", ""]
    if subject:
        lines += [f"Betreff / Subject: {subject}", ""]
    if failed:
        lines += ["Ihre Nachricht konnte an folgende Empfänger NICHT zugestellt werden:",
                  "Your message could NOT be delivered to these recipients:", ""]
        lines += [f"  <{one_line(r.recipient)}>: {one_line(r.diagnostic) or r.status}"
                  for r in failed]
        lines.append("")
    if delayed:
        lines += ["Die Zustellung an folgende Empfänger verzögert sich; wir versuchen es "
                  "weiter. Sie müssen nichts tun.",
                  "Delivery to these recipients is delayed; we keep trying. "
                  "No action is needed.", ""]
        for r in delayed:
            until = f" (bis / until {_date(r.will_retry_until)})" if r.will_retry_until else ""
            lines.append(f"  <{one_line(r.recipient)}>: "
                         f"{one_line(r.diagnostic) or r.status}{until}")
        lines.append("")
    return "\r\n".join(lines) + "\r\n"


def _part(content_type: str, body: bytes, encoding: str = "7bit") -> bytes:
    return (f"Content-Type: {content_type}\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode() + body


def _encoded_header(text: str) -> str:
    return text if text.isascii() else Header(text, "utf-8").encode()


def build_dsn(report: DsnReport, *, now: dt.datetime, boundary: str | None = None,
              message_id: str | None = None) -> bytes:
    """The complete DSN message (RFC 6522 3, RFC 3464 2), CRLF line ends."""
    if not report.recipients:
        raise ValueError("a DSN needs at least one recipient")
    if any(r.action not in (FAILED, DELAYED) for r in report.recipients):
        raise ValueError("DSN action must be failed or delayed")
    headers = header_section(report.original)
    subject = original_subject(headers)
    all_delayed = all(r.action == DELAYED for r in report.recipients)
    title = ("Zustellung verzögert / Delivery delayed" if all_delayed
             else "Unzustellbar / Undeliverable")
    boundary = boundary or f"=_dsn_{uuid.uuid4().hex}"
    message_id = message_id or f"<{uuid.uuid4().hex}@{one_line(report.reporting_mta)}>"
    international = not all(r.recipient.isascii() for r in report.recipients)
    status_type = ("message/global-delivery-status" if international
                   else "message/delivery-status")
    headers_type = "text/rfc822-headers" if headers.isascii() else "message/global-headers"
    human = quopri.encodestring(
        _human_text(report, subject).encode("utf-8").replace(b"\r\n", b"\n")
    ).replace(b"\n", b"\r\n")
    status = status_fields(report)
    sender = one_line(report.sender)
    top = [
        ("From", f"Mail Delivery System <{one_line(report.postmaster)}>"),
        ("To", f"<{sender}>"),
        ("Subject", _encoded_header(f"{title}: {subject}" if subject else title)),
        ("Date", _date(now)),
        ("Message-ID", message_id),
        ("Auto-Submitted", "auto-replied"),  # RFC 3834 5
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/report; report-type=delivery-status;\r\n'
                         f' boundary="{boundary}"'),
    ]
    delimiter = f"--{boundary}\r\n".encode()
    parts = [
        _part("text/plain; charset=utf-8", human, "quoted-printable"),
        _part(status_type, status, "7bit" if status.isascii() else "8bit"),
        _part(headers_type, headers, "7bit" if headers.isascii() else "8bit"),
    ]
    body = b"".join(delimiter + p + b"\r\n" for p in parts) + f"--{boundary}--\r\n".encode()
    return _fields(top) + b"\r\n" + body

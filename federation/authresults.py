"""The Authentication-Results header field (RFC 8601).

Built with ``authres`` (the RFC 8601 module of dkimpy's author), which quotes
values where the grammar needs it.  Reading the authserv-id of incoming
fields is our own small parser: authres refuses valid fields (a quoted
authserv-id) and we must not miss one that claims to be us (RFC 8601 5).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import authres
import authres.core
import authres.dmarc

from federation.dkim import DkimResult
from federation.dmarc import DmarcVerdict
from federation.spf import SpfResult

FIELD_NAME = b"authentication-results"
# Control characters, and lone surrogates (bytes that were not UTF-8, decoded with
# surrogateescape somewhere upstream): neither may reach our header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def _clean(value: str) -> str:
    """Values come from the network: no control characters or undecodable bytes
    may reach our header."""
    return _CONTROL.sub("", value)


def build_header(authserv_id: str, spf: SpfResult | None, dkim: Sequence[DkimResult],
                 dmarc: DmarcVerdict | None) -> bytes:
    """``Authentication-Results: <authserv_id>; dkim=...; spf=...; dmarc=...\\r\\n``.

    RFC 8601 2.7: dkim with header.d/header.s/header.a/header.b (RFC 6008),
    spf with smtp.mailfrom or smtp.helo, dmarc with header.from (RFC 7489 11.2).
    """
    results: list[authres.core.BaseAuthenticationResult] = []
    if not dkim:
        results.append(authres.DKIMAuthenticationResult(result="none"))
    for r in dkim:
        prefix = _clean(r.signature_prefix)
        results.append(authres.DKIMAuthenticationResult(
            result=r.result, reason=_clean(r.reason) or None,
            properties=[authres.core.AuthenticationResultProperty("header", "b", prefix)]
            if prefix else None,
            header_d=_clean(r.domain) or None, header_s=_clean(r.selector) or None,
            header_a=_clean(r.algorithm) or None))
    if spf is not None:
        kwargs = ({"smtp_mailfrom": _clean(spf.sender)} if spf.identity == "mailfrom"
                  else {"smtp_helo": _clean(spf.domain)})
        results.append(authres.SPFAuthenticationResult(result=spf.result, **kwargs))
    if dmarc is not None:
        results.append(authres.dmarc.DMARCAuthenticationResult(
            result=dmarc.result, header_from=_clean(dmarc.from_domain) or None,
            policy=dmarc.policy if dmarc.result in ("pass", "fail") else None))
    header = authres.AuthenticationResultsHeader(authserv_id=_clean(authserv_id),
                                                 results=results)
    return _fold(str(header)).encode("utf-8") + b"\r\n"


def _fold(text: str, limit: int = 78) -> str:
    """Fold at the "; " between results (RFC 5322 2.2.3) so lines stay short."""
    parts = text.split("; ")
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 2 + len(part) > limit:
            lines[-1] += ";"
            lines.append("\t" + part)
        else:
            lines[-1] += "; " + part
    return "\r\n".join(lines)


def _skip_cfws(text: str, pos: int) -> int:
    """Skip white space and (nested) comments (RFC 5322 3.2.2)."""
    depth = 0
    while pos < len(text):
        c = text[pos]
        if depth:
            if c == "\\":
                pos += 1
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
        elif c == "(":
            depth = 1
        elif c not in " \t\r\n":
            break
        pos += 1
    return pos


_TSPECIALS = set('()<>@,;:\\"/[]?= \t\r\n')


def authserv_id(value: str) -> str | None:
    """The authserv-id of an Authentication-Results field value (RFC 8601 2.2), lower case.

    authserv-id = value = token / quoted-string (RFC 2045); None if there is none.
    """
    pos = _skip_cfws(value, 0)
    if pos >= len(value):
        return None
    if value[pos] == '"':
        out: list[str] = []
        pos += 1
        while pos < len(value) and value[pos] != '"':
            if value[pos] == "\\" and pos + 1 < len(value):
                pos += 1
            out.append(value[pos])
            pos += 1
        return "".join(out).lower() if pos < len(value) else None
    end = pos
    while end < len(value) and value[end] not in _TSPECIALS:
        end += 1
    return value[pos:end].lower() or None


def split_header(message: bytes) -> tuple[list[bytes], bytes]:
    """The raw header fields (each with its continuation lines and line ends) and the
    rest of the message starting with the empty line.  Bytes are kept exactly."""
    fields: list[bytes] = []
    pos = 0
    while pos < len(message):
        end = message.find(b"\n", pos)
        end = len(message) if end < 0 else end + 1
        line = message[pos:end]
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
        pos = end
    return fields, message[pos:]


def remove_claims(message: bytes, our_authserv_id: str) -> bytes:
    """Drop every Authentication-Results field whose authserv-id is ours (RFC 8601 5):
    a sender must not be able to forge results in our name."""
    ours = our_authserv_id.lower()
    fields, rest = split_header(message)
    kept = []
    for field in fields:
        name, sep, value = field.partition(b":")
        if sep and name.strip().lower() == FIELD_NAME:
            claimed = authserv_id(value.decode("utf-8", "replace"))
            if claimed is None or claimed == ours:
                continue  # unreadable fields go too: we cannot tell they are not ours
        kept.append(field)
    return b"".join(kept) + rest

"""One-click unsubscribe links of the room digests (RFC 8058, issue 18.2).

A digest's ``List-Unsubscribe`` names an HTTPS URL of the webmail carrying the
person's account id and an HMAC-SHA256 of it under a secret only the server
knows (``UnsubscribeLinks``): whoever has the mail can turn that person's
digests off, without a login, and nobody can make a link for someone else.
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` tells mail programs to
POST to it (RFC 8058 3.1); a GET only shows a page asking to confirm (link
scanners and prefetching must not unsubscribe anyone).  The secret is a file
of random bytes in the school's data directory, made on first use and shared
by every worker (``load_secret``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import urllib.parse
from pathlib import Path

PATH = "/digest/unsubscribe"
_PURPOSE = b"schulhof room digest unsubscribe\x00"
SECRET_BYTES = 32


def load_secret(path: Path) -> bytes:
    """The secret in ``path``; made (readable by the owner only) when missing.

    Several workers may start at once: the new secret is written to a file of its
    own and linked into place, so all of them end up with the one that won."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(SECRET_BYTES))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            temp.unlink()
        data = path.read_bytes()
    if len(data) < SECRET_BYTES:
        raise ValueError(f"{path}: an unsubscribe secret needs {SECRET_BYTES} bytes")
    return data


class UnsubscribeLinks:
    """Makes and checks the links (``base_url``: the webmail as people reach it)."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        if len(secret) < SECRET_BYTES:
            raise ValueError("the unsubscribe secret is too short")
        self._secret = secret
        self._base = base_url.rstrip("/")

    def token(self, account_id: int) -> str:
        mac = hmac.new(self._secret, _PURPOSE + str(account_id).encode(), hashlib.sha256)
        # 128 bits of the MAC (as RFC 2104 5 allows): the URL stays short enough
        # for one header line.
        return base64.urlsafe_b64encode(mac.digest()[:16]).rstrip(b"=").decode()

    def url(self, account_id: int) -> str:
        query = urllib.parse.urlencode({"a": account_id, "t": self.token(account_id)})
        return f"{self._base}{PATH}?{query}"

    def account_of(self, account: str, token: str) -> int | None:
        """The account id the link is for, or None when it is not one of ours."""
        if not account.isascii() or not account.isdigit() or len(account) > 18:
            return None
        account_id = int(account)
        if str(account_id) != account or not hmac.compare_digest(self.token(account_id).encode(),
                                   token.encode("utf-8", "surrogateescape")):
            return None
        return account_id

"""Mail as mbox for an export (RFC 4155, the "mboxrd" variant).

Each message starts with a ``From `` separator line (sender and the internal
date in asctime form) and ends with an empty line; a body line that starts
with any number of ``>`` followed by ``From `` gets one more ``>`` (mboxrd:
reversible, unlike mboxo).  Line ends become LF, as mbox readers expect.
Flags go into ``Status``/``X-Status``/``X-Keywords`` headers, which mail
clients (Thunderbird, mutt) read when they import an mbox file.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

_FROM_LINE = re.compile(rb"^>*From ", re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_SAFE_SENDER = re.compile(rb"[^\x21-\x7e]")


def separator(sender: str, when: dt.datetime) -> bytes:
    """The ``From `` line (RFC 4155 appendix A): one token for the sender, then the
    date in UTC as C's asctime prints it."""
    token = _SAFE_SENDER.sub(b"", sender.encode("utf-8", "replace")) or b"MAILER-DAEMON"
    stamp = when.astimezone(dt.UTC).strftime("%a %b %d %H:%M:%S %Y").encode("ascii")
    return b"From " + token + b" " + stamp + b"\n"


def flag_headers(flags: Iterable[str]) -> bytes:
    """``Status: RO`` (seen, old), ``X-Status: AFD`` (answered, flagged, draft) and
    the keywords, as mbox readers expect them."""
    wanted = set(flags)
    status = ("R" if "\\Seen" in wanted else "") + "O"
    x_status = "".join(letter for flag, letter in (("\\Answered", "A"), ("\\Flagged", "F"),
                                                    ("\\Draft", "T"), ("\\Deleted", "D"))
                       if flag in wanted)
    keywords = sorted(f for f in wanted if not f.startswith("\\"))
    out = f"Status: {status}\n"
    if x_status:
        out += f"X-Status: {x_status}\n"
    if keywords:
        out += f"X-Keywords: {' '.join(keywords)}\n"
    return out.encode("ascii", "replace")


def entry(message: bytes, *, sender: str, when: dt.datetime,
          flags: Iterable[str] = ()) -> bytes:
    """One message as an mboxrd entry: separator, flag headers, the message with
    LF line ends and ``From `` lines quoted, and the closing empty line."""
    text = message.replace(b"\r\n", b"\n")
    text = _FROM_LINE.sub(lambda m: b">" + m.group(0), text)
    if not text.endswith(b"\n"):
        text += b"\n"
    return separator(sender, when) + flag_headers(flags) + text + b"\n"


def unquote(body: bytes) -> bytes:
    """The reverse of the mboxrd quoting (for readers and the tests)."""
    return re.sub(rb"^>(>*From )", rb"\1", body, flags=re.MULTILINE)

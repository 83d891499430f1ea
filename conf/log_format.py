"""How the ``schulhof`` process logs: level and format from the ``[log]`` settings.

Our log messages are logfmt already (``event=smtp_accepted id=... size=...``);
``logfmt`` prefixes time, level and logger; ``json`` writes one JSON object
per line with those fields and every ``key=value`` pair of the message as its
own field (a value with spaces stays in ``msg``), for Loki, Graylog or journald.
At INFO a server writes one line per connection, transaction or admin action;
per-event detail (each room event, each SMTP command) is DEBUG.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys

FORMATS = ("logfmt", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_PAIR = re.compile(r'(?:^|\s)([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|\S*)')
LOGFMT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg and the message's pairs."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname, "logger": record.name}
        for key, value in _PAIR.findall(message):
            if key not in entry:
                entry[key] = value[1:-1] if value.startswith('"') else value
        entry["msg"] = message
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "logfmt") -> None:
    """(Re)configure the root logger; unknown values are a settings error upstream."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(LOGFMT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    quiet = logging.WARNING if level.upper() != "DEBUG" else logging.DEBUG
    # One line per migration step, and aiosmtpd's line per SMTP command, are noise.
    logging.getLogger("alembic").setLevel(quiet)
    logging.getLogger("mail.log").setLevel(quiet)

"""The ``schulhof`` command: argument parsing and dispatch to conf.commands.*.

Each command module registers its sub-commands; a handler is an async function
``handler(args, school) -> exit code`` (or ``handler(args) -> exit code`` for
commands that run before a school exists, such as ``init``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from conf import log_format
from conf.commands import (
    aliases,
    backup,
    dns,
    federation,
    groups,
    importing,
    privacy,
    queue,
    rooms,
    school,
    users,
)
from conf.settings import SettingsError, load_settings
from directory.model import DirectoryError

COMMAND_MODULES = (school, users, groups, aliases, importing, privacy, dns, queue, rooms,
                   federation, backup)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="schulhof", description="Federated mail and messaging server for schools.")
    parser.add_argument(
        "--config", "-c", type=Path,
        default=Path(os.environ.get("SCHULHOF_CONFIG", "schulhof.toml")),
        help="settings file (default: $SCHULHOF_CONFIG or ./schulhof.toml)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


class BadHttpRequestsAreInfo(logging.Filter):
    """aiohttp logs every malformed request (too many headers, a broken chunk,
    a bad Content-Length) as an ERROR with a traceback: the client's mistake,
    answered with a 4xx, becomes one INFO line on the ``aiohttp.server`` logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = "event=http_bad_request status=%s reason=%s client=%s"
            client = record.args[0] if isinstance(record.args, tuple) and record.args else ""
            reason = " ".join(str(error.message).split())[:200]
            record.args = (error.code, reason, client)
            record.exc_info, record.exc_text = None, None
        return True


def configure_logging(verbose: bool, level: str = "INFO", fmt: str = "logfmt") -> None:
    """``--verbose`` wins over ``log.level``; ``log.format`` is logfmt or json."""
    log_format.configure("DEBUG" if verbose else level, fmt)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadHttpRequestsAreInfo) for f in server.filters):
        server.addFilter(BadHttpRequestsAreInfo())


async def run(args: argparse.Namespace) -> int:
    if not getattr(args, "needs_school", True):
        return await args.handler(args)
    from conf.app import School  # after parsing: each command loads only what it uses

    settings = load_settings(args.config)
    configure_logging(args.verbose, settings.log.level, settings.log.format)
    # A serve worker finds the schema migrated by its supervisor.
    migrate = getattr(args, "migrate", True) and getattr(args, "worker", None) is None
    the_school = await School.open(settings, migrate=migrate)
    try:
        return await args.handler(args, the_school)
    finally:
        await the_school.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return asyncio.run(run(args))
    except SettingsError as exc:
        print(f"schulhof: settings error: {exc}", file=sys.stderr)
        return 2
    except DirectoryError as exc:
        print(f"schulhof: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

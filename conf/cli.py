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

from conf.app import School
from conf.commands import aliases, dns, groups, importing, queue, rooms, school, users
from conf.settings import SettingsError, load_settings
from directory.model import DirectoryError

COMMAND_MODULES = (school, users, groups, aliases, importing, dns, queue, rooms)


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


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    if not verbose:
        # One line per migration step, and aiosmtpd's line per SMTP command, are noise.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("mail.log").setLevel(logging.WARNING)


async def run(args: argparse.Namespace) -> int:
    if not getattr(args, "needs_school", True):
        return await args.handler(args)
    settings = load_settings(args.config)
    the_school = await School.open(settings, migrate=getattr(args, "migrate", True))
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

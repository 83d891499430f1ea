"""``schulhof export LOGIN`` (GDPR Art. 15/20) and ``schulhof audit`` (who did what)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

from conf.commands.output import cli_actor, fail, print_table

if TYPE_CHECKING:
    from conf.app import School


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="write an account's data to a ZIP file (GDPR Art. 15/20)",
                       description="Mail as mbox per folder, chat rooms as Matrix events and "
                                   "HTML, uploaded files, devices and the directory entry.")
    p.add_argument("login")
    p.add_argument("--output", "-o", type=Path, default=None,
                   help="the new ZIP file (default: LOGIN-export-DATE.zip here); mode 0600")
    p.set_defaults(handler=export)

    p = sub.add_parser("audit", help="show the audit log, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--actor", help="only this admin's actions (a login, or cli:USER)")
    p.add_argument("--action", help="only this action (e.g. account.erase)")
    p.add_argument("--target", help="only actions on this login, group or alias")
    p.set_defaults(handler=audit)


async def export(args: argparse.Namespace, school: School) -> int:
    from conf.admin.export import export_account

    account = await school.directory.get_account(args.login)
    target: Path = args.output or Path(
        f"{account.login}-export-{dt.date.today().isoformat()}.zip")
    try:
        # O_EXCL: never overwrite (an older export may be another person's).
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return fail(f"cannot create {target}: {exc.strerror}")
    try:
        with os.fdopen(fd, "wb") as out:
            summary = await export_account(school, account.login, out, cli_actor())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    print(f"exported {account.login} to {target}: {summary.mailboxes} folders, "
          f"{summary.messages} messages, {summary.rooms} rooms, {summary.events} chat events, "
          f"{summary.media} files")
    return 0


async def audit(args: argparse.Namespace, school: School) -> int:
    if args.limit < 1:
        return fail("--limit must be at least 1")
    entries = await school.audit.entries(limit=args.limit, actor=args.actor,
                                         action=args.action, target=args.target)
    print_table(("WHEN", "ACTOR", "FROM", "ACTION", "TARGET", "DETAILS"),
                ((e.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), e.actor,
                  e.client_address, e.action, e.target, e.details) for e in entries))
    return 0




"""``schulhof backup DIR`` and ``schulhof restore BACKUP TARGET`` (conf.backup)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from conf.backup import BackupError, make_backup, restore_backup

if TYPE_CHECKING:
    from conf.app import School


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="copy database, keys, certificate, data and settings "
                                      "into a new folder (while the server runs)")
    p.add_argument("directory", type=Path, help="a new or empty folder")
    p.set_defaults(handler=backup, migrate=False)

    p = sub.add_parser("restore", help="check a backup and restore it into a folder")
    p.add_argument("backup", type=Path, help="the folder made by 'schulhof backup'")
    p.add_argument("target", type=Path, help="the folder of the restored school")
    p.add_argument("--database-url", default="",
                   help="PostgreSQL: the database to load the backup into")
    p.set_defaults(handler=restore, needs_school=False)


async def backup(args: argparse.Namespace, school: School) -> int:
    try:
        summary = await asyncio.to_thread(make_backup, school.settings, args.config,
                                          args.directory)
    except BackupError as error:
        print(f"schulhof: backup refused: {error}", file=sys.stderr)
        return 1
    print(f"backup written to {summary.directory}: {summary.files} files, "
          f"{summary.bytes} bytes (manifest.json lists their SHA-256)")
    return 0


async def restore(args: argparse.Namespace) -> int:
    try:
        settings_file = await asyncio.to_thread(restore_backup, args.backup, args.target,
                                                database_url=args.database_url)
    except BackupError as error:
        print(f"schulhof: restore refused: {error}", file=sys.stderr)
        return 1
    print(f"restored; start it with: schulhof --config {settings_file} serve")
    return 0

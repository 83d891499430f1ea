"""``schulhof import FILE.csv``: pupils, teachers and parents from a school program's export."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from conf.commands.output import cli_actor, write_new_private_file

if TYPE_CHECKING:
    from conf.app import School
    from directory.importer import ImportSummary

DELIMITER_NAMES = {";": "';'", ",": "','", "\t": "tab"}


_T = TypeVar("_T")

def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import", help="import pupils, teachers and parents from a CSV export",
        description="Create, update and retire accounts, class and course groups and "
                    "parent links from the CSV export of the school administration "
                    "program. Nothing changes unless every row is good.")
    p.add_argument("file", type=Path, help="the CSV file (';' or ',', UTF-8 or Windows-1252)")
    p.add_argument("--dry-run", action="store_true",
                   help="show what would change and change nothing")
    p.add_argument("--passwords-out", type=Path, metavar="FILE",
                   help="write new accounts' initial passwords to this new CSV file (mode "
                        "0600); without it new accounts get no password")
    p.add_argument("--letters-out", type=Path, metavar="FILE",
                   help="write a PDF with one password letter per new account to this new "
                        "file (mode 0600), grouped by class")
    p.add_argument("--today", type=dt.date.fromisoformat, default=None,
                   help="treat this date (YYYY-MM-DD) as today (leavers' deletion dates)")
    p.set_defaults(handler=import_file)


async def import_file(args: argparse.Namespace, school: School) -> int:
    from conf.admin.letters import letter_school, render_letters
    from directory.importer import Importer, ImportFileError, InvalidImportFile, profile_named

    settings = school.settings.importer
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"schulhof: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        importer = Importer(school.directory, profile=profile_named(settings.profile),
                            leaver_grace_days=settings.leaver_grace_days,
                            password_length=settings.password_length)
        if args.letters_out and args.letters_out.exists():
            raise ImportFileError(f"{args.letters_out} exists; name a new file for the "
                                  "letters (earlier letters are never overwritten)")
        summary = await importer.run(data, dry_run=args.dry_run,
                                     passwords_out=args.passwords_out,
                                     issue_passwords=bool(args.letters_out), today=args.today)
    except InvalidImportFile as exc:
        print(f"schulhof: {args.file}: {exc}:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    except ImportFileError as exc:
        print(f"schulhof: {args.file}: {exc}; nothing imported", file=sys.stderr)
        return 1
    if not summary.dry_run:
        plan = summary.plan
        await school.audit.record(cli_actor(), "import.apply", args.file.name, {
            "rows": summary.rows, "created": len(plan.created), "updated": len(plan.updated),
            "moved": len(plan.moved), "leavers": len(plan.leavers),
            "restored": len(plan.restored), "groups_created": len(plan.groups_created)})
    print_summary(summary, sys.stdout)
    if args.letters_out and summary.initial_passwords:
        pdf = render_letters(summary.initial_passwords, letter_school(school.settings))
        try:
            write_new_private_file(args.letters_out, pdf)
        except OSError as exc:
            print(f"schulhof: cannot write {args.letters_out}: {exc.strerror}; the accounts "
                  "were created: set their passwords with 'schulhof user reset-password'",
                  file=sys.stderr)
            return 1
        print(f"password letters for the {len(summary.initial_passwords)} new accounts: "
              f"{args.letters_out} (print, hand out, then delete it)")
    if args.passwords_out and not summary.passwords_file and not summary.dry_run:
        print(f"no new accounts: {args.passwords_out} was not written")
    return 0


def print_summary(summary: ImportSummary, out: TextIO) -> None:
    """Counts always; for a dry run also every name, so the run can be checked first."""
    plan = summary.plan

    def say(text: str = "") -> None:
        print(text, file=out)

    def section(title: str, items: Sequence[_T], line: Callable[[_T], str]) -> None:
        say(f"{title:<10} {len(items)}")
        if summary.dry_run:
            for item in items:
                say(f"  {line(item)}")

    if summary.dry_run:
        say("dry run: nothing was changed; this is what the import would do")
    say(f"read {summary.rows} rows ({summary.encoding}, "
        f"{DELIMITER_NAMES.get(summary.delimiter, summary.delimiter)} separated)")
    section("created", plan.created, lambda n: f"{n.login} ({n.display_name}, {n.role.value}"
            + (f", {n.class_name})" if n.class_name else ")"))
    section("updated", plan.updated, lambda u: f"{u.login}: " + ", ".join(
        f"{c.field} {c.old!r} -> {c.new!r}" for c in u.changes))
    section("moved", plan.moved,
            lambda m: f"{m.login}: {m.old_class or '-'} -> {m.new_class or '-'}")
    section("leavers", plan.leavers,
            lambda v: f"{v.login} (deleted by 'schulhof purge' from {v.deletion_date})")
    section("restored", plan.restored, lambda r: r.login)
    say(f"{'unchanged':<10} {plan.unchanged}")
    renamed = plan.groups_changed
    say(f"groups     {len(plan.groups_created)} created, {len(renamed)} renamed, "
        f"{len(plan.groups_removed)} removed")
    if summary.dry_run:
        for g in plan.groups_created:
            say(f"  + {g.name} ({g.kind.value})")
        for c in renamed:
            say(f"  ~ {c.old_name} -> {c.new_name}")
        for r in plan.groups_removed:
            say(f"  - {r.name}")
    added = sum(1 for m in plan.memberships if m.role is not None)
    say(f"members    {added} added or changed, {len(plan.memberships) - added} removed")
    say(f"parents    {len(plan.children)} with changed children")
    if summary.dry_run:
        return
    if summary.passwords_file:
        say(f"initial passwords of the {len(plan.created)} new accounts: "
            f"{summary.passwords_file} (hand out, then delete it)")
    elif plan.created:
        say(f"note: the {summary.without_password} new accounts have no password and cannot "
            "log in until one is set with 'schulhof user passwd' (or import with "
            "--passwords-out FILE)")
    seconds = summary.seconds
    say(f"took {sum(seconds.values()):.1f} s ("
        + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()) + ")")

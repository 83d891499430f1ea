"""``schulhof user ...``: accounts from the command line.

Output is plain text for people and scripts alike: tables with a header line
and the free-text column last, ``key: value`` lines for one record, messages
on standard error with exit status 1.  Passwords come from standard input
(``--password-stdin``) or a prompt, never from an argument: arguments end up
in ``ps`` output and shell history.  The password rule (``check_password``) is
the directory's, shared with the messenger's password change.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from conf.commands.output import cli_actor, fail, print_table, write_new_private_file
from directory.model import Role, Status
from directory.passwords import PasswordRejected
from directory.passwords import check_new_password as check_password

if TYPE_CHECKING:
    from conf.app import School

ROLES = [r.value for r in Role]
STATUSES = [s.value for s in Status]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="manage accounts")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")

    # No abbreviated options here: "--password" must not quietly mean "--password-stdin".
    p = actions.add_parser("add", help="create an account", allow_abbrev=False)
    p.add_argument("login")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--first-name", default="")
    p.add_argument("--last-name", default="")
    p.add_argument("--display-name", default=None,
                   help="default: first and last name, or the login")
    p.add_argument("--external-id", default=None, help="the id in the school's records")
    _add_password_stdin(p)
    p.set_defaults(handler=add_user)

    p = actions.add_parser("list", help="list accounts")
    p.add_argument("--role", choices=ROLES)
    p.add_argument("--status", choices=STATUSES)
    p.set_defaults(handler=list_users)

    p = actions.add_parser("show", help="show one account with its groups and aliases")
    p.add_argument("login")
    p.set_defaults(handler=show_user)

    p = actions.add_parser("passwd", help="set an account's password", allow_abbrev=False)
    p.add_argument("login")
    _add_password_stdin(p)
    p.set_defaults(handler=set_password)

    p = actions.add_parser("reset-password",
                           help="give an account a new random password and print its letter")
    p.add_argument("login")
    p.add_argument("--letter-out", type=Path, required=True, metavar="FILE",
                   help="the new PDF file (mode 0600) with the password letter")
    p.set_defaults(handler=reset_password_letter)

    p = actions.add_parser("suspend", help="stop an account from logging in")
    p.add_argument("login")
    p.set_defaults(handler=suspend_user)

    p = actions.add_parser("unsuspend", help="let a suspended account log in again")
    p.add_argument("login")
    p.set_defaults(handler=unsuspend_user)

    p = actions.add_parser("delete", aliases=["erase"],
                           help="erase an account and everything it owns (GDPR Art. 17): "
                                "mail, chat messages (redacted), files, devices")
    p.add_argument("login")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=delete_user)


def _add_password_stdin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin", action="store_true",
        help="read the password from the first line of standard input instead of prompting")


# --- passwords -----------------------------------------------------------------------

def read_new_password(from_stdin: bool) -> str:
    """The first line of standard input, or the same password typed twice at a prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        return check_password(line.removesuffix("\n").removesuffix("\r"))
    if not sys.stdin.isatty():
        raise PasswordRejected("standard input is not a terminal, so there is no one to ask "
                               "for a password: use --password-stdin")
    password = check_password(getpass.getpass("New password: "))
    if getpass.getpass("Repeat the password: ") != password:
        raise PasswordRejected("the passwords do not match")
    return password


# --- handlers --------------------------------------------------------------------------

async def add_user(args: argparse.Namespace, school: School) -> int:
    try:
        password = read_new_password(args.password_stdin)
    except PasswordRejected as exc:
        return fail(str(exc))
    account = await school.directory.create_account(
        role=Role(args.role), login=args.login, first_name=args.first_name,
        last_name=args.last_name, display_name=args.display_name,
        external_id=args.external_id, password=password)
    await school.audit.record(cli_actor(), "account.create", account.login,
                              {"role": account.role.value, "password": bool(password)})
    print(f"created {account.role} {account.login} <{school.directory.address_of(account.login)}>")
    return 0


async def list_users(args: argparse.Namespace, school: School) -> int:
    directory = school.directory
    accounts = await directory.list_accounts(
        role=Role(args.role) if args.role else None,
        status=Status(args.status) if args.status else None)
    counts = await directory.group_counts()
    print_table(("LOGIN", "ROLE", "STATUS", "GROUPS", "DISPLAY NAME"),
                ((a.login, a.role, a.status, counts.get(a.login, 0), a.display_name)
                 for a in accounts))
    return 0


async def show_user(args: argparse.Namespace, school: School) -> int:
    directory = school.directory
    account = await directory.get_account(args.login)
    groups = await directory.groups_of(account.login)
    aliases = sorted(await directory.addresses_of(account.login) - {account.login})
    fields: list[tuple[str, object]] = [
        ("login", account.login),
        ("address", directory.address_of(account.login)),
        ("display name", account.display_name),
        ("first name", account.first_name),
        ("last name", account.last_name),
        ("role", account.role),
        ("status", account.status),
        ("deletion date", account.deletion_date),
        ("external id", account.external_id),
        ("id", account.id),
        ("created", account.created_at and account.created_at.isoformat(timespec="seconds")),
        ("updated", account.updated_at and account.updated_at.isoformat(timespec="seconds")),
        ("groups", ", ".join(f"{g.name} ({role})" for g, role in groups)),
        ("aliases", ", ".join(aliases)),
    ]
    if account.role is Role.PARENT:
        children = await directory.children_of(account.login)
        fields.append(("children", ", ".join(c.login for c in children)))
    for key, value in fields:
        print(f"{key}: {'-' if value in ('', None) else value}")
    return 0


async def set_password(args: argparse.Namespace, school: School) -> int:
    account = await school.directory.get_account(args.login)  # before asking for a password
    try:
        password = read_new_password(args.password_stdin)
    except PasswordRejected as exc:
        return fail(str(exc))
    await school.directory.set_password(account.login, password)
    await school.audit.record(cli_actor(), "account.password", account.login)
    print(f"password set for {account.login}")
    return 0


async def reset_password_letter(args: argparse.Namespace, school: School) -> int:
    from conf.admin.letters import letter_school, render_letters
    from conf.admin.passwords import reset_password

    account = await school.directory.get_account(args.login)
    if args.letter_out.exists():
        return fail(f"{args.letter_out} exists; name a new file for the letter")
    issued = await reset_password(school, account.login, cli_actor())
    try:
        write_new_private_file(args.letter_out,
                               render_letters([issued], letter_school(school.settings)))
    except OSError as exc:
        return fail(f"cannot write {args.letter_out}: {exc.strerror}; the password was "
                    "changed: reset it again with another file")
    print(f"new password for {account.login}: letter in {args.letter_out}")
    return 0


async def suspend_user(args: argparse.Namespace, school: School) -> int:
    account = await school.directory.get_account(args.login)
    if account.status is Status.LEAVER:
        # A leaver cannot log in anyway; suspending would clear the deletion date.
        return fail(f"{account.login} is a leaver (to be deleted on {account.deletion_date}); "
                    "not suspended")
    if account.status is Status.SUSPENDED:
        print(f"{account.login} is already suspended")
        return 0
    await school.directory.set_status(account.login, Status.SUSPENDED)
    await school.audit.record(cli_actor(), "account.suspend", account.login)
    print(f"suspended {account.login}")
    return 0


async def unsuspend_user(args: argparse.Namespace, school: School) -> int:
    account = await school.directory.get_account(args.login)
    if account.status is Status.ACTIVE:
        print(f"{account.login} is already active")
        return 0
    await school.directory.set_status(account.login, Status.ACTIVE)
    await school.audit.record(cli_actor(), "account.unsuspend", account.login,
                              {"was": account.status.value})
    if account.status is Status.LEAVER:
        print(f"reactivated leaver {account.login}; its deletion on "
              f"{account.deletion_date} is cancelled")
    else:
        print(f"unsuspended {account.login}")
    return 0


async def delete_user(args: argparse.Namespace, school: School) -> int:
    from conf.admin.erasure import erase_account

    account = await school.directory.get_account(args.login)
    if not args.yes:
        if not sys.stdin.isatty():
            return fail(f"not deleting {account.login}: standard input is not a terminal, "
                        "so confirm with --yes")
        print(f"Delete {account.role} {account.login} ({account.display_name}) and "
              "everything it owns? [y/N] ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return fail(f"{account.login} not deleted")
    report = await erase_account(school, account.login, cli_actor())
    print(f"deleted {account.login}: {report.mail.messages} messages, "
          f"{report.messenger.events_redacted} chat events redacted, "
          f"{report.messenger.rooms_left} rooms left, {report.messenger.media} files")
    return 0

"""``schulhof alias ...``: further addresses for an account or a group."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from conf.commands.output import cli_actor, print_table

if TYPE_CHECKING:
    from conf.app import School


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alias = sub.add_parser("alias", help="manage address aliases")
    actions = alias.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("add", help="give an account or a group a further address")
    p.add_argument("alias", help="the new local part (before the @)")
    p.add_argument("target", help="the login or group name it stands for")
    p.set_defaults(handler=add_alias)

    p = actions.add_parser("list", help="list aliases and what they stand for")
    p.set_defaults(handler=list_aliases)

    p = actions.add_parser("delete", help="remove an alias")
    p.add_argument("alias")
    p.set_defaults(handler=delete_alias)


async def add_alias(args: argparse.Namespace, school: School) -> int:
    directory = school.directory
    entry = await directory.add_alias(args.alias, args.target)
    # entry.owner is TARGET as given, which may itself be an alias: name the real owner.
    resolved = await directory.resolve(entry.local_part)
    if resolved is not None and resolved.account is not None:
        owner = resolved.account.login
    elif resolved is not None and resolved.group is not None:
        owner = resolved.group.name
    else:  # removed again meanwhile
        owner = entry.owner
    await school.audit.record(cli_actor(), "alias.create", entry.local_part,
                              {entry.owner_kind: owner})
    print(f"{directory.address_of(entry.local_part)} -> {entry.owner_kind} {owner}")
    return 0


async def list_aliases(args: argparse.Namespace, school: School) -> int:
    print_table(("ALIAS", "KIND", "TARGET"),
                ((e.local_part, e.owner_kind, e.owner)
                 for e in await school.directory.list_aliases()))
    return 0


async def delete_alias(args: argparse.Namespace, school: School) -> int:
    await school.directory.delete_alias(args.alias)
    await school.audit.record(cli_actor(), "alias.delete", args.alias.strip().lower())
    print(f"deleted alias {args.alias.strip().lower()}")
    return 0

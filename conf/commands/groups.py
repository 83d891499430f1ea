"""``schulhof group ...``: classes, courses, staff and custom groups (mailing lists and rooms)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from conf.commands.output import cli_actor, print_table
from directory.model import GroupKind, MemberRole

if TYPE_CHECKING:
    from conf.app import School

KINDS = [k.value for k in GroupKind]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("group", help="manage groups and their members")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("add", help="create a group (its name is also its address)")
    p.add_argument("name")
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--display-name", default=None, help="default: the name")
    p.add_argument("--members-may-post", action="store_true",
                   help="let every member write to the group, not only its owners")
    p.set_defaults(handler=add_group)

    p = actions.add_parser("list", help="list groups")
    p.add_argument("--kind", choices=KINDS)
    p.set_defaults(handler=list_groups)

    p = actions.add_parser("members", help="list a group's members")
    p.add_argument("name")
    p.set_defaults(handler=list_members)

    p = actions.add_parser("add-member", help="add an account to a group (or change its role)")
    p.add_argument("name")
    p.add_argument("login")
    p.add_argument("--owner", action="store_true",
                   help="as an owner (the group's teacher), who may always post")
    p.set_defaults(handler=add_member)

    p = actions.add_parser("remove-member", help="remove an account from a group")
    p.add_argument("name")
    p.add_argument("login")
    p.set_defaults(handler=remove_member)

    p = actions.add_parser("bridge", help="show or change how the group's mail and room meet")
    p.add_argument("name")
    p.add_argument("--mail-to-room", choices=["on", "off"],
                   help="post mail to the group's address into its room "
                        "(default: on for class and course groups)")
    p.add_argument("--parents", choices=["on", "off"],
                   help="mail the room's announcements to the parents of pupil members too")
    p.set_defaults(handler=bridge_settings)


async def add_group(args: argparse.Namespace, school: School) -> int:
    group = await school.directory.create_group(
        args.name, kind=GroupKind(args.kind), display_name=args.display_name,
        members_may_post=args.members_may_post)
    await school.audit.record(cli_actor(), "group.create", group.name,
                              {"kind": group.kind.value,
                               "members_may_post": group.members_may_post})
    print(f"created {group.kind} group {group.name} <{school.directory.address_of(group.name)}>")
    return 0


async def list_groups(args: argparse.Namespace, school: School) -> int:
    directory = school.directory
    groups = await directory.list_groups(GroupKind(args.kind) if args.kind else None)
    rows = []
    for group in groups:  # one query per group; a Directory.list_groups with counts would do
        members = await directory.group_members(group.name)
        rows.append((group.name, group.kind, len(members),
                     "members" if group.members_may_post else "owners", group.display_name))
    print_table(("NAME", "KIND", "MEMBERS", "POSTING", "DISPLAY NAME"), rows)
    return 0


async def list_members(args: argparse.Namespace, school: School) -> int:
    members = await school.directory.group_members(args.name)
    print_table(("LOGIN", "MEMBERSHIP", "ROLE", "STATUS", "DISPLAY NAME"),
                ((m.account.login, m.role, m.account.role, m.account.status,
                  m.account.display_name) for m in members))
    return 0


async def add_member(args: argparse.Namespace, school: School) -> int:
    role = MemberRole.OWNER if args.owner else MemberRole.MEMBER
    await school.directory.add_member(args.name, args.login, role)
    await school.audit.record(cli_actor(), "group.add_member", args.name.lower(),
                              {"login": args.login.lower(), "role": role.value})
    print(f"{args.login.lower()} is now {role} of {args.name.lower()}")
    return 0


async def remove_member(args: argparse.Namespace, school: School) -> int:
    await school.directory.remove_member(args.name, args.login)
    await school.audit.record(cli_actor(), "group.remove_member", args.name.lower(),
                              {"login": args.login.lower()})
    print(f"removed {args.login.lower()} from {args.name.lower()}")
    return 0


def _on(value: str | None) -> bool | None:
    return None if value is None else value == "on"


async def bridge_settings(args: argparse.Namespace, school: School) -> int:
    from messenger.bridge_groups import BridgeGroups

    group = await school.directory.get_group(args.name)
    groups = BridgeGroups(school.db)
    if args.mail_to_room is None and args.parents is None:
        bridge = await groups.of(group)
    else:
        bridge = await groups.change(group, mail_to_room=_on(args.mail_to_room),
                                     parents_digest=_on(args.parents))
        await school.audit.record(cli_actor(), "group.bridge", group.name,
                                  {"mail_to_room": bridge.mail_to_room,
                                   "parents": bridge.parents_digest})
    print(f"{group.name}: mail-to-room {'on' if bridge.mail_to_room else 'off'}, "
          f"parents {'on' if bridge.parents_digest else 'off'}")
    return 0

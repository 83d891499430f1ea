"""Recipient suggestions for the compose form: the school directory's people,
groups and aliases, but only those the role policy lets this user write to
(``directory.policy.RolePolicy``, the same rules the submission applies), so
a pupil is never offered an address that would be refused."""

from __future__ import annotations

from dataclasses import dataclass

from directory.model import Account, MemberRole
from directory.policy import ContactTarget, TargetKind
from directory.service import Directory


@dataclass(frozen=True)
class Contact:
    address: str
    label: str


async def reachable_contacts(directory: Directory, account: Account,
                             domain: str) -> list[Contact]:
    """Every directory address ``account`` may write to, people first, by name."""
    policy = directory.policy
    children = {child.id for child in await directory.children_of(account.login)}
    memberships: dict[int, MemberRole] = {
        group.id: role for group, role in await directory.groups_of(account.login)}
    people: list[Contact] = []
    allowed_accounts: dict[str, Account] = {}
    for other in await directory.list_accounts():
        if not other.is_active or other.id == account.id:
            continue
        target = ContactTarget(TargetKind.ACCOUNT, role=other.role,
                               is_child_of_sender=other.id in children)
        if policy.may_contact(account.role, target).allowed:
            allowed_accounts[other.login] = other
            people.append(Contact(f"{other.login}@{domain}", other.display_name or other.login))
    groups: list[Contact] = []
    allowed_groups: set[str] = set()
    for group in await directory.list_groups():
        target = ContactTarget(TargetKind.GROUP, members_may_post=group.members_may_post,
                               sender_membership=memberships.get(group.id))
        if policy.may_contact(account.role, target).allowed:
            allowed_groups.add(group.name)
            groups.append(Contact(f"{group.name}@{domain}", f"Gruppe {group.display_name}"))
    aliases: list[Contact] = []
    for alias in await directory.list_aliases():
        owner = allowed_accounts.get(alias.owner) if alias.owner_kind == "account" else None
        if owner is not None:
            aliases.append(Contact(f"{alias.local_part}@{domain}", owner.display_name))
        elif alias.owner_kind == "group" and alias.owner in allowed_groups:
            aliases.append(Contact(f"{alias.local_part}@{domain}", f"Gruppe {alias.owner}"))
    people.sort(key=lambda c: c.label.lower())
    return people + sorted(groups, key=lambda c: c.label.lower()) + aliases

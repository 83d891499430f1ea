"""Role policy: one place that decides who may write to whom, for mail and chat.

Pure logic over facts the caller looked up (``ContactTarget``), so the whole
table can be tested without a database.  Defaults:

* pupils reach accounts and groups of their own school and of partner
  schools; other outside addresses are refused;
* parents reach teachers, staff, admins and their own children;
* teachers, staff and admins reach anyone;
* group lists: owners (teachers) and teachers/staff/admins always post,
  members only where the group allows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from directory.model import MemberRole, Role

STAFF_ROLES = frozenset({Role.TEACHER, Role.STAFF, Role.ADMIN})


@dataclass(frozen=True)
class PolicyRules:
    pupils_external: bool = False
    pupils_partner_schools: bool = True
    parents_reach_pupils: bool = False
    parents_external: bool = False


class TargetKind(StrEnum):
    ACCOUNT = "account"  # a person of this school
    GROUP = "group"  # a group list of this school
    REMOTE = "remote"  # an address at another domain


@dataclass(frozen=True)
class ContactTarget:
    kind: TargetKind
    role: Role | None = None  # ACCOUNT: the recipient's role
    is_child_of_sender: bool = False  # ACCOUNT: sender is a linked parent
    sender_membership: MemberRole | None = None  # GROUP: sender's place in it
    members_may_post: bool = False  # GROUP
    domain: str = ""  # REMOTE
    is_partner_school: bool = False  # REMOTE


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""


ALLOWED = Verdict(True)


class RolePolicy:
    def __init__(self, rules: PolicyRules) -> None:
        self.rules = rules

    def may_contact(self, sender_role: Role, target: ContactTarget) -> Verdict:
        if target.kind is TargetKind.GROUP:
            return self._may_post_to_group(sender_role, target)
        if sender_role in STAFF_ROLES:
            return ALLOWED
        if target.kind is TargetKind.REMOTE:
            return self._may_reach_remote(sender_role, target)
        if sender_role is Role.PUPIL:
            return ALLOWED
        # Parents.
        if target.role in STAFF_ROLES or target.is_child_of_sender:
            return ALLOWED
        if target.role is Role.PUPIL and self.rules.parents_reach_pupils:
            return ALLOWED
        if target.role is Role.PUPIL:
            return Verdict(False, "parents may only contact their own children, "
                                  "teachers and school staff")
        return Verdict(False, "parents may only contact teachers and school staff")

    def _may_reach_remote(self, sender_role: Role, target: ContactTarget) -> Verdict:
        if sender_role is Role.PUPIL:
            if self.rules.pupils_external:
                return ALLOWED
            if target.is_partner_school and self.rules.pupils_partner_schools:
                return ALLOWED
            return Verdict(False, f"pupils may not write to addresses outside the school "
                                  f"and its partner schools ({target.domain})")
        if self.rules.parents_external:
            return ALLOWED
        return Verdict(False, f"parent accounts may not write outside the school "
                              f"({target.domain})")

    @staticmethod
    def _may_post_to_group(sender_role: Role, target: ContactTarget) -> Verdict:
        if sender_role in STAFF_ROLES or target.sender_membership is MemberRole.OWNER:
            return ALLOWED
        if target.sender_membership is MemberRole.MEMBER and target.members_may_post:
            return ALLOWED
        return Verdict(False, "only the group's teachers may post to this group")

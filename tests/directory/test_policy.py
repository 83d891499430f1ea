"""RolePolicy against a table written out by hand (not derived from the code).

Every sender role x every kind of target (each recipient role, as a stranger
and as the sender's child; each place in a group, open and closed; outside
addresses, partner school or not), under all 16 combinations of PolicyRules.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from directory.model import MemberRole, Role
from directory.policy import ContactTarget, PolicyRules, RolePolicy, TargetKind

# A cell is "yes", "no", or the rule switches of which at least one must be on
# ("PE|PPS": pupils_external or pupils_partner_schools).
SWITCHES = {
    "PE": "pupils_external",
    "PPS": "pupils_partner_schools",
    "PRP": "parents_reach_pupils",
    "PAE": "parents_external",
}

EXPECTED = """
target                 pupil   parent  teacher  staff  admin
account:pupil          yes     PRP     yes      yes    yes
account:teacher        yes     yes     yes      yes    yes
account:parent         yes     no      yes      yes    yes
account:staff          yes     yes     yes      yes    yes
account:admin          yes     yes     yes      yes    yes
child:pupil            yes     yes     yes      yes    yes
child:teacher          yes     yes     yes      yes    yes
child:parent           yes     yes     yes      yes    yes
child:staff            yes     yes     yes      yes    yes
child:admin            yes     yes     yes      yes    yes
group:outsider/closed  no      no      yes      yes    yes
group:outsider/open    no      no      yes      yes    yes
group:member/closed    no      no      yes      yes    yes
group:member/open      yes     yes     yes      yes    yes
group:owner/closed     yes     yes     yes      yes    yes
group:owner/open       yes     yes     yes      yes    yes
remote:other           PE      PAE     yes      yes    yes
remote:partner         PE|PPS  PAE     yes      yes    yes
"""


def _target(label: str) -> ContactTarget:
    kind, _, detail = label.partition(":")
    if kind in ("account", "child"):
        return ContactTarget(TargetKind.ACCOUNT, role=Role(detail),
                             is_child_of_sender=kind == "child")
    if kind == "group":
        place, _, posting = detail.partition("/")
        membership = {"outsider": None, "member": MemberRole.MEMBER,
                      "owner": MemberRole.OWNER}[place]
        return ContactTarget(TargetKind.GROUP, sender_membership=membership,
                             members_may_post=posting == "open")
    assert kind == "remote"
    partner = detail == "partner"
    return ContactTarget(TargetKind.REMOTE, domain=f"{detail}.example",
                         is_partner_school=partner)


def _table() -> dict[tuple[Role, str], str]:
    header, *lines = EXPECTED.strip().splitlines()
    senders = [Role(name) for name in header.split()[1:]]
    cells = {}
    for line in lines:
        label, *row = line.split()
        assert len(row) == len(senders), line
        for sender, cell in zip(senders, row, strict=True):
            cells[sender, label] = cell
    return cells


TABLE = _table()
ALL_RULES = [PolicyRules(**dict(zip(SWITCHES.values(), values, strict=True)))
             for values in itertools.product([False, True], repeat=len(SWITCHES))]


def _expected(cell: str, rules: PolicyRules) -> bool:
    if cell in ("yes", "no"):
        return cell == "yes"
    return any(getattr(rules, SWITCHES[code]) for code in cell.split("|"))


def test_the_table_covers_every_role_and_every_kind_of_target() -> None:
    assert {sender for sender, _ in TABLE} == set(Role)
    labels = {label for _, label in TABLE}
    assert {label.partition(":")[0] for label in labels} == {"account", "child", "group",
                                                             "remote"}
    assert {_target(label).role for label in labels if label.startswith("account")} == set(Role)
    assert len(labels) == 5 * 2 + 3 * 2 + 2
    assert len(ALL_RULES) == 16 and len(set(ALL_RULES)) == 16


@pytest.mark.parametrize("rules", ALL_RULES, ids=lambda r: "-".join(
    code for code, name in SWITCHES.items() if getattr(r, name)) or "all-off")
def test_every_sender_and_target_under_every_rule_combination(rules: PolicyRules) -> None:
    policy = RolePolicy(rules)
    wrong = []
    for (sender, label), cell in TABLE.items():
        target = _target(label)
        verdict = policy.may_contact(sender, target)
        if verdict.allowed != _expected(cell, rules):
            wrong.append(f"{sender} -> {label}: {verdict}")
        elif not verdict.allowed:
            assert verdict.reason.strip(), (sender, label)
            if target.kind is TargetKind.REMOTE:
                assert target.domain in verdict.reason
        else:
            assert verdict.reason == ""
    assert not wrong, "\n".join(wrong)


def test_the_defaults() -> None:
    assert PolicyRules() == PolicyRules(pupils_external=False, pupils_partner_schools=True,
                                        parents_reach_pupils=False, parents_external=False)


# Which cells each switch changes when flipped from the defaults, written out again.
FLIPS = {
    "pupils_external": {(Role.PUPIL, "remote:other")},
    "pupils_partner_schools": {(Role.PUPIL, "remote:partner")},
    "parents_reach_pupils": {(Role.PARENT, "account:pupil")},
    "parents_external": {(Role.PARENT, "remote:other"), (Role.PARENT, "remote:partner")},
}


@pytest.mark.parametrize("switch", list(SWITCHES.values()))
def test_each_switch_changes_exactly_its_cells(switch: str) -> None:
    defaults = PolicyRules()
    flipped = dataclasses.replace(defaults, **{switch: not getattr(defaults, switch)})
    before, after = RolePolicy(defaults), RolePolicy(flipped)
    changed = {(sender, label) for sender, label in TABLE
               if before.may_contact(sender, _target(label)).allowed
               != after.may_contact(sender, _target(label)).allowed}
    assert changed == FLIPS[switch]


@pytest.mark.parametrize(("sender", "label", "words"), [
    (Role.PARENT, "account:pupil", "own children"),
    (Role.PARENT, "account:parent", "teachers"),
    (Role.PUPIL, "group:member/closed", "teachers"),
    (Role.PARENT, "group:outsider/open", "teachers"),
    (Role.PUPIL, "remote:other", "outside the school"),
    (Role.PARENT, "remote:partner", "outside the school"),
])
def test_refusals_say_why(sender: Role, label: str, words: str) -> None:
    verdict = RolePolicy(PolicyRules()).may_contact(sender, _target(label))
    assert not verdict.allowed and words in verdict.reason

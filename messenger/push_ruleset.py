"""A user's push rules and the edits clients make to them (spec: Client-Server API
"Push Rules: API", 13.13.1).

The ruleset lives in the user's ``m.push_rules`` account data, as /sync hands
it to clients; until a user edits anything it is the predefined set
(messenger.api.push_rules).  Edits are pure functions from a ruleset to a new
one: user rules of a kind come before the server's predefined ones (except
``.m.rule.master``, which stays first), ``before``/``after`` place a rule
among the user rules, and predefined rules can be switched on or off and get
other actions, but never be created, deleted or moved.
"""

from __future__ import annotations

import copy
from typing import Any

KINDS = ("override", "content", "room", "sender", "underride")
MAX_USER_RULES = 500  # per user: the ruleset is one account-data blob
MAX_RULE_ID = 255


class PushRuleError(Exception):
    errcode = "M_INVALID_PARAM"
    status = 400


class RuleNotFound(PushRuleError):
    errcode = "M_NOT_FOUND"
    status = 404


class MissingParam(PushRuleError):
    errcode = "M_MISSING_PARAM"


def ruleset_of(stored: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """The user's ruleset: the stored one when it is well-formed, else the defaults."""
    if isinstance(stored, dict) and isinstance(stored.get("global"), dict) and all(
            isinstance(stored["global"].get(kind), list) for kind in KINDS):
        return stored
    return defaults


def effective_ruleset(stored: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """The ruleset push rules are evaluated with: the user's own rules of each kind
    as stored, and every predefined rule of ``defaults`` (with the ``enabled`` and
    ``actions`` the user gave it), in the order ``put_rule`` keeps.

    A ruleset a client wrote whole through the account data API may lack kinds or
    predefined rules (or predate rules added to the spec since): those still apply.
    """
    scope = stored.get("global") if isinstance(stored, dict) else None
    if not isinstance(scope, dict):
        return defaults
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        rules = scope.get(kind)
        rules = [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []
        own = [r for r in rules if r.get("default") is not True]
        changed = {r.get("rule_id"): r for r in rules if r.get("default") is True}
        predefined = []
        for rule in defaults["global"][kind]:
            edit = changed.get(rule["rule_id"])
            if edit is not None:
                rule = {**rule, "enabled": edit.get("enabled", rule["enabled"]),
                        "actions": edit.get("actions", rule["actions"])}
            predefined.append(rule)
        if predefined and predefined[0]["rule_id"] == ".m.rule.master":
            out[kind] = [predefined[0], *own, *predefined[1:]]
        else:
            out[kind] = [*own, *predefined]
    return {"global": out}


def _rules(ruleset: dict[str, Any], scope: str, kind: str) -> list[dict[str, Any]]:
    if scope != "global":
        raise RuleNotFound(f"unknown scope {scope!r}")
    if kind not in KINDS:
        raise RuleNotFound(f"unknown kind {kind!r}")
    return ruleset["global"][kind]


def find_rule(ruleset: dict[str, Any], scope: str, kind: str, rule_id: str) -> dict[str, Any]:
    for rule in _rules(ruleset, scope, kind):
        if rule.get("rule_id") == rule_id:
            return rule
    raise RuleNotFound(f"no push rule {rule_id!r}")


def _check_actions(actions: Any) -> list[Any]:
    if not isinstance(actions, list) or not all(
            isinstance(a, str) or (isinstance(a, dict) and isinstance(a.get("set_tweak"), str))
            for a in actions):
        raise PushRuleError("actions must be a list of strings and set_tweak objects")
    return actions


def _new_rule(kind: str, rule_id: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise PushRuleError("the body must be an object")
    if "actions" not in body:
        raise MissingParam("actions is required")
    rule: dict[str, Any] = {"rule_id": rule_id, "default": False, "enabled": True,
                            "actions": _check_actions(body["actions"])}
    if kind in ("override", "underride"):
        conditions = body.get("conditions", [])
        if not isinstance(conditions, list) or not all(isinstance(c, dict) and
                                                       isinstance(c.get("kind"), str)
                                                       for c in conditions):
            raise PushRuleError("conditions must be a list of condition objects")
        rule["conditions"] = conditions
    elif kind == "content":
        pattern = body.get("pattern")
        if pattern is None:
            raise MissingParam("pattern is required for content rules")
        if not isinstance(pattern, str) or not pattern:
            raise PushRuleError("pattern must be a non-empty string")
        rule["pattern"] = pattern
    return rule


def put_rule(ruleset: dict[str, Any], scope: str, kind: str, rule_id: str, body: Any, *,
             before: str | None = None, after: str | None = None) -> dict[str, Any]:
    """The ruleset with a user rule added or replaced (PUT /pushrules/...)."""
    if not rule_id or rule_id.startswith(".") or len(rule_id) > MAX_RULE_ID \
            or "/" in rule_id or "\\" in rule_id:
        raise PushRuleError("rule ids of user rules may not start with '.' or contain '/'")
    result = copy.deepcopy(ruleset)
    rules = _rules(result, scope, kind)
    rule = _new_rule(kind, rule_id, body)
    existing = [i for i, r in enumerate(rules) if r.get("rule_id") == rule_id]
    user_rules = sum(1 for k in KINDS for r in result["global"][k] if not r.get("default"))
    if not existing and user_rules >= MAX_USER_RULES:
        raise PushRuleError(f"at most {MAX_USER_RULES} push rules")
    if existing and before is None and after is None:
        rules[existing[0]] = {**rule, "enabled": rules[existing[0]].get("enabled", True)}
        return result
    if existing:
        del rules[existing[0]]
    anchor = before if before is not None else after
    if anchor is not None:
        positions = [i for i, r in enumerate(rules)
                     if r.get("rule_id") == anchor and not r.get("default")]
        if not positions:
            raise RuleNotFound(f"no user rule {anchor!r} to place the rule next to")
        rules.insert(positions[0] + (0 if before is not None else 1), rule)
        return result
    # Highest priority among user rules: after .m.rule.master only.
    first = 1 if rules and rules[0].get("rule_id") == ".m.rule.master" else 0
    rules.insert(first, rule)
    return result


def delete_rule(ruleset: dict[str, Any], scope: str, kind: str,
                rule_id: str) -> dict[str, Any]:
    result = copy.deepcopy(ruleset)
    rules = _rules(result, scope, kind)
    rule = find_rule(result, scope, kind, rule_id)
    if rule.get("default"):
        raise PushRuleError("predefined rules cannot be deleted (disable them instead)")
    rules.remove(rule)
    return result


def set_attribute(ruleset: dict[str, Any], scope: str, kind: str, rule_id: str,
                  attribute: str, body: Any) -> dict[str, Any]:
    """``enabled`` or ``actions`` of any rule, predefined ones included."""
    if not isinstance(body, dict) or attribute not in body:
        raise MissingParam(f"{attribute} is required")
    value = body[attribute]
    if attribute == "enabled":
        if not isinstance(value, bool):
            raise PushRuleError("enabled must be true or false")
    elif attribute == "actions":
        value = _check_actions(value)
    else:
        raise RuleNotFound(f"no attribute {attribute!r}")
    result = copy.deepcopy(ruleset)
    find_rule(result, scope, kind, rule_id)[attribute] = value
    return result

"""Reading and editing push rules (spec: Client-Server API "Push Rules: API"):
``GET /pushrules/``, ``GET|PUT|DELETE /pushrules/global/{kind}/{ruleId}`` and its
``/enabled`` and ``/actions``.  The ruleset is the user's ``m.push_rules``
account data (messenger.push_ruleset), so /sync tells the user's other devices
and the push sender reads the same rules (a muted room gets no push)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from messenger.api.errors import MatrixError
from messenger.api.http import context, json_body, ok, requester
from messenger.identity import Requester
from messenger.push_defaults import default_push_rules
from messenger.push_ruleset import (
    PushRuleError,
    delete_rule,
    find_rule,
    put_rule,
    ruleset_of,
    set_attribute,
)
from messenger.storage import user_data

PUSH_RULES = "m.push_rules"


async def _ruleset(request: web.Request, who: Requester) -> dict[str, Any]:
    async with context(request).db.read() as session:
        stored = await user_data.get_account_data(session, who.account_id, "", PUSH_RULES)
    return ruleset_of(stored, default_push_rules(who.user_id))


async def _edit(request: web.Request,
                change: Callable[[dict[str, Any]], dict[str, Any]]) -> web.Response:
    who = await requester(request)
    ctx = context(request)
    try:
        async with ctx.db.write() as session:
            stored = await user_data.get_account_data(session, who.account_id, "", PUSH_RULES)
            ruleset = change(ruleset_of(stored, default_push_rules(who.user_id)))
            stream_id = await user_data.put_account_data(session, who.account_id, "",
                                                         PUSH_RULES, ruleset)
    except PushRuleError as exc:
        raise MatrixError(exc.status, exc.errcode, str(exc)) from None
    ctx.sync.account_data_changed(who.user_id, stream_id)
    return ok()


def _where(request: web.Request) -> tuple[str, str, str]:
    info = request.match_info
    return info["scope"], info["kind"], info["rule_id"]


async def all_rules(request: web.Request) -> web.Response:
    ruleset = await _ruleset(request, await requester(request))
    scope = request.match_info.get("scope")
    return ok(ruleset.get(scope, ruleset) if scope else ruleset)


async def get_rule(request: web.Request) -> web.Response:
    ruleset = await _ruleset(request, await requester(request))
    attribute = request.match_info.get("attribute")
    try:
        rule = find_rule(ruleset, *_where(request))
    except PushRuleError as exc:
        raise MatrixError(exc.status, exc.errcode, str(exc)) from None
    if attribute is None:
        return ok(rule)
    if attribute not in ("enabled", "actions"):
        raise MatrixError(404, "M_NOT_FOUND", f"no attribute {attribute!r}")
    return ok({attribute: rule.get(attribute, True if attribute == "enabled" else [])})


async def put(request: web.Request) -> web.Response:
    body = await json_body(request)
    before, after = request.query.get("before"), request.query.get("after")
    return await _edit(request, lambda rules: put_rule(rules, *_where(request), body,
                                                       before=before, after=after))


async def delete(request: web.Request) -> web.Response:
    return await _edit(request, lambda rules: delete_rule(rules, *_where(request)))


async def put_attribute(request: web.Request) -> web.Response:
    body = await json_body(request)
    attribute = request.match_info["attribute"]
    return await _edit(request, lambda rules: set_attribute(rules, *_where(request),
                                                            attribute, body))


def routes(prefix: str) -> list[web.RouteDef]:
    rule = f"{prefix}/pushrules/{{scope}}/{{kind}}/{{rule_id}}"
    return [
        web.get(f"{prefix}/pushrules/", all_rules),
        web.get(f"{prefix}/pushrules", all_rules),
        web.get(f"{prefix}/pushrules/{{scope}}/", all_rules),
        web.get(rule, get_rule),
        web.put(rule, put),
        web.delete(rule, delete),
        web.get(f"{rule}/{{attribute}}", get_rule),
        web.put(f"{rule}/{{attribute}}", put_attribute),
    ]

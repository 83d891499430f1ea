"""Parsing a POST /search body (messenger.api.search.parse_search): property tests."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from messenger.api.errors import MatrixError
from messenger.api.search import MAX_CONTEXT, MAX_LIMIT, SearchRequest, parse_search

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)
criteria = st.fixed_dictionaries({}, optional={
    "search_term": values | st.text(max_size=30), "keys": values | st.just(["content.body"]),
    "order_by": values | st.sampled_from(["rank", "recent"]),
    "filter": values | st.fixed_dictionaries({}, optional={
        "limit": values, "rooms": values | st.lists(st.text(max_size=10), max_size=3)}),
    "event_context": values | st.fixed_dictionaries({}, optional={
        "before_limit": values, "after_limit": values})})
bodies = st.fixed_dictionaries({}, optional={
    "search_categories": values | st.fixed_dictionaries({}, optional={
        "room_events": values | criteria})})


@given(bodies, st.none() | st.text(max_size=12) | st.integers(0, 10**6).map(lambda n: f"t{n}"))
def test_any_body_is_a_request_or_a_400(body: dict[str, Any], next_batch: str | None) -> None:
    try:
        asked = parse_search(body, next_batch)
    except MatrixError as exc:
        assert exc.status == 400 and exc.errcode in ("M_BAD_JSON", "M_INVALID_PARAM")
        return
    if asked is None:
        assert isinstance(body.get("search_categories"), dict)
        assert body["search_categories"].get("room_events") is None
        return
    assert isinstance(asked, SearchRequest)
    assert 1 <= asked.limit <= MAX_LIMIT
    assert 0 <= asked.context_before <= MAX_CONTEXT and 0 <= asked.context_after <= MAX_CONTEXT
    assert asked.term in ("", body["search_categories"]["room_events"]["search_term"])
    assert asked.before is None or asked.before >= 0


def test_a_plain_request() -> None:
    asked = parse_search({"search_categories": {"room_events": {
        "search_term": "Museum", "filter": {"limit": 3, "rooms": ["!a:s"]},
        "event_context": {"before_limit": 99}}}}, "t42")
    assert asked == SearchRequest("Museum", ["!a:s"], 3, True, MAX_CONTEXT, 5, 42)

"""Reading ``m.relates_to`` (messenger.storage.relations.relation_of), the search
words and the bundle rules (messenger.relations), without a server."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from messenger.relations import _bundle, _valid_edits
from messenger.room_search import MAX_WORDS, search_words
from messenger.storage.events import StoredEvent
from messenger.storage.relations import Relation, RelationFact, relation_of

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=3),
    max_leaves=10)


@given(json_values)
def test_any_content_reads_without_crashing(content: Any) -> None:
    relation = relation_of(content)
    assert relation is None or isinstance(relation, Relation)


@given(st.dictionaries(st.sampled_from(["rel_type", "event_id", "key", "m.in_reply_to"]),
                       json_values))
def test_a_relation_needs_a_type_and_an_event_id(relates: dict[str, Any]) -> None:
    relation = relation_of({"m.relates_to": relates})
    valid = (isinstance(relates.get("rel_type"), str) and relates["rel_type"]
             and isinstance(relates.get("event_id"), str)
             and relates["event_id"].startswith("$"))
    assert (relation is not None) == bool(valid)
    if relation is not None:
        assert relation.relates_to == relates["event_id"]
        assert relation.key is None or relation.rel_type == "m.annotation"


def test_annotation_keys_and_oversized_ids() -> None:
    assert relation_of({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$a",
                                         "key": "👍"}}) == Relation("m.annotation", "$a", "👍")
    assert relation_of({"m.relates_to": {"rel_type": "m.thread", "event_id": "$a",
                                         "key": "x"}}) == Relation("m.thread", "$a", None)
    assert relation_of({"m.relates_to": {"rel_type": "m.thread",
                                         "event_id": "$" + "a" * 300}}) is None
    # A plain reply is no relation the server aggregates.
    assert relation_of({"m.relates_to": {"m.in_reply_to": {"event_id": "$a"}}}) is None


@given(st.text(max_size=200))
def test_search_words_are_few_folded_and_nonempty(term: str) -> None:
    words = search_words(term)
    assert len(words) <= MAX_WORDS
    assert all(w and w == w.casefold() and not any(c.isspace() for c in w) for w in words)


def event(event_id: str, sender: str, event_type: str = "m.room.message",
          content: dict[str, Any] | None = None, position: int = 1) -> StoredEvent:
    return StoredEvent(event_id, position, "!r:s", {
        "type": event_type, "sender": sender, "content": content or {}, "room_id": "!r:s",
        "origin_server_ts": position, "event_id": event_id})


def fact(event_id: str, rel_type: str, sender: str, event_type: str = "m.room.message",
         key: str | None = None, position: int = 2) -> RelationFact:
    return RelationFact(event_id, "$root", rel_type, event_type, sender, key, position)


def test_only_the_senders_own_edits_of_the_same_type_count() -> None:
    root = event("$root", "@a:s")
    related = [fact("$e1", "m.replace", "@a:s", position=2),
               fact("$e2", "m.replace", "@b:s", position=3),
               fact("$e3", "m.replace", "@a:s", "m.sticker", position=4)]
    assert [f.event_id for f in _valid_edits(root, related)] == ["$e1"]
    edit = event("$root", "@a:s", content={"m.relates_to": {"rel_type": "m.replace",
                                                            "event_id": "$x"}})
    assert _valid_edits(edit, related) == []  # an edit is not edited


def test_a_bundle_counts_threads_and_reactions() -> None:
    root = event("$root", "@a:s")
    related = [fact("$t1", "m.thread", "@b:s", position=2),
               fact("$t2", "m.thread", "@c:s", position=3),
               fact("$r1", "m.annotation", "@b:s", "m.reaction", "👍", 4),
               fact("$r2", "m.annotation", "@c:s", "m.reaction", "👍", 5),
               fact("$ref", "m.reference", "@c:s", position=6)]
    loaded = {"$t2": event("$t2", "@c:s", position=3)}
    bundle = _bundle(root, related, loaded, "@b:s", now_ms=10)
    assert bundle["m.thread"]["count"] == 2
    assert bundle["m.thread"]["latest_event"]["event_id"] == "$t2"
    assert bundle["m.thread"]["current_user_participated"] is True
    assert bundle["m.annotation"] == {"chunk": [{"type": "m.reaction", "key": "👍",
                                                 "count": 2}]}
    assert bundle["m.reference"] == {"chunk": [{"event_id": "$ref"}]}
    assert "m.replace" not in bundle
    outsider = _bundle(root, related, loaded, "@z:s", now_ms=10)
    assert outsider["m.thread"]["current_user_participated"] is False

"""The body of a simplified sliding sync request (MSC4186,
``POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync``), parsed
into typed values (wire parsing only: no state, no storage).

Request shape (MSC4186 "Request body"): ``conn_id``, ``lists`` (name ->
``ranges``, ``required_state``, ``timeline_limit``, ``filters``),
``room_subscriptions`` (room id -> ``required_state``, ``timeline_limit``)
(sticky: kept until ``unsubscribe_rooms`` names them, as matrix-js-sdk expects)
and ``extensions`` (``to_device``, ``e2ee``, ``account_data``, ``receipts``,
``typing``).  Unknown keys are ignored (the MSC grows; clients send more than
we read); wrong types and values out of range are ``InvalidRequest``
(M_INVALID_PARAM).  A list sent with only ``ranges`` keeps its other
parameters from the connection's previous request (matrix-js-sdk sends the
sticky parameters only when they change), see ``ListConfig.merged``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from messenger.rooms.errors import InvalidRequest

MAX_LISTS = 100
MAX_LIST_NAME = 64
MAX_RANGES = 100
MAX_ROOM_SUBSCRIPTIONS = 1000
MAX_REQUIRED_STATE = 1000
MAX_CONN_ID = 64
MAX_FILTER_ITEMS = 1000
MAX_TO_DEVICE_LIMIT = 1000
MAX_RANGE_END = 2**31  # a window past every possible room count; larger is a bad request

WILDCARD = "*"
STATE_KEY_ME = "$ME"
STATE_KEY_LAZY = "$LAZY"
EXTENSIONS = ("to_device", "e2ee", "account_data", "receipts", "typing")


@dataclass(frozen=True)
class RequiredState:
    """Which state a room's response carries: (type, state_key) pairs with
    ``*`` wildcards, ``$ME`` and, for members, ``$LAZY`` (timeline senders)."""

    include: frozenset[tuple[str, str]] = frozenset()
    exclude: frozenset[tuple[str, str]] = frozenset()

    def wants(self, event_type: str, state_key: str, me: str,
              lazy_members: frozenset[str] | set[str] = frozenset()) -> bool:
        if self._matches(self.exclude, event_type, state_key, me):
            return False
        if event_type == "m.room.member" and state_key in lazy_members \
                and ("m.room.member", STATE_KEY_LAZY) in self.include:
            return True
        return self._matches(self.include, event_type, state_key, me)

    @staticmethod
    def _matches(pairs: frozenset[tuple[str, str]], event_type: str, state_key: str,
                 me: str) -> bool:
        for wanted_type, wanted_key in pairs:
            if wanted_type not in (WILDCARD, event_type):
                continue
            if wanted_key in (WILDCARD, state_key) \
                    or (wanted_key == STATE_KEY_ME and state_key == me):
                return True
        return False

    @property
    def lazy(self) -> bool:
        return ("m.room.member", STATE_KEY_LAZY) in self.include

    def union(self, other: RequiredState) -> RequiredState:
        if other == self or not other.include:
            return self
        if not self.include:
            return other
        # An exclusion only holds when both sides exclude it.
        return RequiredState(self.include | other.include, self.exclude & other.exclude)


@dataclass(frozen=True)
class RoomConfig:
    """What one room's entry holds (MSC4186 "Room config")."""

    required_state: RequiredState = RequiredState()
    timeline_limit: int = 0

    def union(self, other: RoomConfig) -> RoomConfig:
        return RoomConfig(self.required_state.union(other.required_state),
                          max(self.timeline_limit, other.timeline_limit))


@dataclass(frozen=True)
class ListFilters:
    """MSC4186 list filters; ``None`` means "don't filter on this"."""

    is_dm: bool | None = None
    is_invite: bool | None = None
    is_encrypted: bool | None = None
    spaces: frozenset[str] | None = None
    room_types: frozenset[str | None] | None = None
    not_room_types: frozenset[str | None] = frozenset()
    tags: frozenset[str] | None = None
    not_tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ListConfig:
    ranges: tuple[tuple[int, int], ...] = ()
    room: RoomConfig = RoomConfig()
    filters: ListFilters = ListFilters()
    # Which of the sticky fields this request carried (the rest come from before).
    given: frozenset[str] = frozenset()

    def merged(self, previous: ListConfig | None) -> ListConfig:
        """This list's config with the fields it left out taken from ``previous``."""
        if previous is None:
            return self
        room = RoomConfig(
            self.room.required_state if "required_state" in self.given
            else previous.room.required_state,
            self.room.timeline_limit if "timeline_limit" in self.given
            else previous.room.timeline_limit)
        return replace(self, room=room,
                       filters=self.filters if "filters" in self.given else previous.filters,
                       given=self.given | previous.given)


@dataclass(frozen=True)
class ExtensionConfig:
    enabled: bool | None = None  # None: as in the connection's previous request
    lists: tuple[str, ...] | None = None  # None: all lists
    rooms: tuple[str, ...] | None = None  # None: all subscribed rooms
    since: str | None = None  # to_device only
    limit: int | None = None  # to_device only

    def merged(self, previous: ExtensionConfig | None) -> ExtensionConfig:
        if previous is None:
            return self
        return ExtensionConfig(
            self.enabled if self.enabled is not None else previous.enabled,
            self.lists if self.lists is not None else previous.lists,
            self.rooms if self.rooms is not None else previous.rooms,
            self.since, self.limit)

    @property
    def on(self) -> bool:
        return bool(self.enabled)

    def covers(self, room_id: str, lists_of_room: set[str]) -> bool:
        if self.lists is None and self.rooms is None:
            return True
        if self.rooms is not None and (WILDCARD in self.rooms or room_id in self.rooms):
            return True
        return self.lists is not None and (WILDCARD in self.lists
                                           or bool(lists_of_room & set(self.lists)))


@dataclass(frozen=True)
class SlidingRequest:
    conn_id: str = ""
    txn_id: str | None = None
    lists: Mapping[str, ListConfig] = field(default_factory=dict)
    room_subscriptions: Mapping[str, RoomConfig] = field(default_factory=dict)
    unsubscribe_rooms: tuple[str, ...] = ()
    extensions: Mapping[str, ExtensionConfig] = field(default_factory=dict)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{where} must be an object")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"{where} must be an integer in [{low}, {high}]")
    return value


def _bool(value: Any, where: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidRequest(f"{where} must be true or false")
    return value


def _strings(value: Any, where: str, *, nullable: bool = False) -> tuple[Any, ...]:
    if not isinstance(value, list) or len(value) > MAX_FILTER_ITEMS or not all(
            isinstance(v, str) or (nullable and v is None) for v in value):
        raise InvalidRequest(f"{where} must be a list of at most {MAX_FILTER_ITEMS} strings")
    return tuple(value)


def _required_state(value: Any, where: str) -> RequiredState:
    if not isinstance(value, list) or len(value) > MAX_REQUIRED_STATE:
        raise InvalidRequest(f"{where} must be a list of at most {MAX_REQUIRED_STATE} pairs")
    include, exclude = set(), set()
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2
                and all(isinstance(p, str) for p in pair)):
            raise InvalidRequest(f"{where} entries must be [event type, state key]")
        event_type, state_key = pair
        # MSC3575: a leading "-" excludes, used with a wildcard
        if event_type.startswith("-") and len(event_type) > 1:
            exclude.add((event_type[1:], state_key))
        else:
            include.add((event_type, state_key))
    return RequiredState(frozenset(include), frozenset(exclude))


def _room_config(body: Mapping[str, Any], where: str, max_timeline: int,
                 ) -> tuple[RoomConfig, frozenset[str]]:
    given = set()
    required = RequiredState()
    if body.get("required_state") is not None:
        required = _required_state(body["required_state"], f"{where}.required_state")
        given.add("required_state")
    limit = 0
    if body.get("timeline_limit") is not None:
        # Larger limits are a hint the server may lower (like /sync's filter limit).
        limit = min(_int(body["timeline_limit"], f"{where}.timeline_limit", 0, 2**53 - 1),
                    max_timeline)
        given.add("timeline_limit")
    return RoomConfig(required, limit), frozenset(given)


def _ranges(value: Any, where: str) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list) or len(value) > MAX_RANGES:
        raise InvalidRequest(f"{where} must be a list of at most {MAX_RANGES} ranges")
    out = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise InvalidRequest(f"{where} entries must be [start, end]")
        start = _int(pair[0], f"{where} start", 0, MAX_RANGE_END)
        end = _int(pair[1], f"{where} end", 0, MAX_RANGE_END)
        if end < start:
            raise InvalidRequest(f"{where}: a range ends before it starts")
        out.append((start, end))
    return tuple(out)


def _filters(value: Any, where: str) -> ListFilters:
    body = _object(value, where)
    spaces = body.get("spaces")
    room_types = body.get("room_types")
    tags = body.get("tags")
    return ListFilters(
        is_dm=_bool(body.get("is_dm"), f"{where}.is_dm"),
        is_invite=_bool(body.get("is_invite"), f"{where}.is_invite"),
        is_encrypted=_bool(body.get("is_encrypted"), f"{where}.is_encrypted"),
        spaces=frozenset(_strings(spaces, f"{where}.spaces")) if spaces is not None else None,
        room_types=frozenset(_strings(room_types, f"{where}.room_types", nullable=True))
        if room_types is not None else None,
        not_room_types=frozenset(_strings(body.get("not_room_types", []),
                                          f"{where}.not_room_types", nullable=True)),
        tags=frozenset(_strings(tags, f"{where}.tags")) if tags is not None else None,
        not_tags=frozenset(_strings(body.get("not_tags", []), f"{where}.not_tags")),
    )


def _list(value: Any, where: str, max_timeline: int) -> ListConfig:
    body = _object(value, where)
    room, given = _room_config(body, where, max_timeline)
    if body.get("filters") is not None:
        given |= {"filters"}
    return ListConfig(ranges=_ranges(body.get("ranges", []), f"{where}.ranges"), room=room,
                      filters=_filters(body.get("filters"), f"{where}.filters"), given=given)


def _extension(name: str, value: Any) -> ExtensionConfig:
    where = f"extensions.{name}"
    body = _object(value, where)
    lists, rooms = body.get("lists"), body.get("rooms")
    since = body.get("since")
    if since is not None and not isinstance(since, str):
        raise InvalidRequest(f"{where}.since must be a string")
    limit = body.get("limit")
    return ExtensionConfig(
        enabled=_bool(body.get("enabled"), f"{where}.enabled"),
        lists=_strings(lists, f"{where}.lists") if lists is not None else None,
        rooms=_strings(rooms, f"{where}.rooms") if rooms is not None else None,
        since=since,
        limit=_int(limit, f"{where}.limit", 1, MAX_TO_DEVICE_LIMIT) if limit is not None
        else None)


def parse_request(body: Any, max_timeline: int) -> SlidingRequest:
    """The typed request; ``InvalidRequest`` says what is wrong with the body."""
    body = _object(body, "the request body")
    conn_id = body.get("conn_id") or ""
    if not isinstance(conn_id, str) or len(conn_id) > MAX_CONN_ID:
        raise InvalidRequest(f"conn_id must be a string of at most {MAX_CONN_ID} characters")
    txn_id = body.get("txn_id")
    if txn_id is not None and not isinstance(txn_id, str):
        raise InvalidRequest("txn_id must be a string")
    raw_lists = _object(body.get("lists"), "lists")
    if len(raw_lists) > MAX_LISTS:
        raise InvalidRequest(f"at most {MAX_LISTS} lists")
    lists = {}
    for name, value in raw_lists.items():
        if not name or len(name) > MAX_LIST_NAME:
            raise InvalidRequest(f"list names have 1 to {MAX_LIST_NAME} characters")
        lists[name] = _list(value, f"lists.{name}", max_timeline)
    raw_subs = _object(body.get("room_subscriptions"), "room_subscriptions")
    if len(raw_subs) > MAX_ROOM_SUBSCRIPTIONS:
        raise InvalidRequest(f"at most {MAX_ROOM_SUBSCRIPTIONS} room subscriptions")
    subscriptions = {room_id: _room_config(_object(value, f"room_subscriptions.{room_id}"),
                                           f"room_subscriptions.{room_id}", max_timeline)[0]
                     for room_id, value in raw_subs.items()}
    unsubscribe = body.get("unsubscribe_rooms")
    unsubscribe = _strings(unsubscribe, "unsubscribe_rooms") if unsubscribe is not None else ()
    raw_ext = _object(body.get("extensions"), "extensions")
    extensions = {name: _extension(name, raw_ext[name]) for name in EXTENSIONS
                  if name in raw_ext}
    return SlidingRequest(conn_id, txn_id, lists, subscriptions, unsubscribe, extensions)

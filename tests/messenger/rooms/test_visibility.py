"""History visibility (messenger.rooms.visibility, spec 11.2) against a replay model:
walking the room's events in order, what the user may see of each."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from messenger.rooms.visibility import FIRST_POSITION, NO_JOIN, ServerVisibility, Visibility

SETTINGS = ["world_readable", "shared", "invited", "joined"]
MEMBERSHIPS = ["join", "invite", "leave", "ban"]

# A room's history: at each position 1..n an event, some of them a visibility
# change or a membership event of the user.
histories = st.lists(st.one_of(st.none(),
                               st.tuples(st.just("setting"), st.sampled_from(SETTINGS)),
                               st.tuples(st.just("member"), st.sampled_from(MEMBERSHIPS))),
                     min_size=1, max_size=30)


def replay(history: list[tuple[str, str] | None]) -> list[bool]:
    """Visible or not, per position, by the spec's words."""
    joins = [n + 1 for n, e in enumerate(history) if e == ("member", "join")]
    setting, membership, out = "shared", "leave", []
    for n, event in enumerate(history):
        position = n + 1
        if event is not None and event[0] == "member":
            membership = event[1]  # the user's own membership event counts at itself
        seen_then = membership == "join" or (setting == "invited" and membership == "invite")
        if setting == "world_readable" or seen_then:
            out.append(True)
        else:
            out.append(setting == "shared" and any(j > position for j in joins))
        if event is not None and event[0] == "setting":
            setting = event[1]  # applies to the events after it
    return out


def visibility(history: list[tuple[str, str] | None]) -> Visibility:
    settings = tuple((n + 1, e[1]) for n, e in enumerate(history) if e and e[0] == "setting")
    members = tuple((n + 1, e[1]) for n, e in enumerate(history) if e and e[0] == "member")
    last_join = max((p for p, m in members if m == "join"), default=NO_JOIN)
    return Visibility(settings, members, last_join)


@given(histories)
def test_visible_is_the_spec_replayed(history: list[tuple[str, str] | None]) -> None:
    view = visibility(history)
    assert [view.visible(p) for p in range(1, len(history) + 1)] == replay(history)


@given(histories)
def test_nothing_at_or_below_the_floor_is_visible(history: list[tuple[str, str] | None]) -> None:
    view = visibility(history)
    # A floor below position 1 (at FIRST_POSITION, where history backfilled from
    # other servers lies) means "visible from the very start" in this model.
    floor = max(view.floor(), 0)
    expected = replay(history)
    assert not any(expected[:floor])
    if any(expected):
        assert expected[floor]  # the first position above the floor is visible


def test_backfilled_history_is_shared_only_with_users_who_joined() -> None:
    """History backfilled from other servers lies at 0 and below: under "shared" a
    user who joined later sees it, one who never joined does not."""
    never_joined = Visibility((), (), NO_JOIN)
    joined = Visibility((), ((5, "join"),), 5)
    for position in (FIRST_POSITION + 1, -1000, 0):
        assert joined.visible(position)
        assert not never_joined.visible(position)
    assert never_joined.floor() >= 0 or not never_joined.visible(never_joined.floor() + 1)


# A server's history: at each position a visibility change or a member event of one
# of its two users (0 or 1).
server_histories = st.lists(st.one_of(
    st.none(), st.tuples(st.just("setting"), st.sampled_from(SETTINGS)),
    st.tuples(st.sampled_from(["0", "1"]), st.sampled_from(MEMBERSHIPS))),
    min_size=1, max_size=30)


def server_replay(history: list[tuple[str, str] | None]) -> list[bool]:
    """Visible to the server or not, per position (Server-Server API "Room history
    visibility", Synapse's filter_events_for_server)."""
    setting, membership, out = "shared", {"0": "leave", "1": "leave"}, []
    for event in history:
        if event is not None and event[0] != "setting":
            membership[event[0]] = event[1]
        out.append(setting in ("world_readable", "shared")
                   or "join" in membership.values()
                   or (setting == "invited" and "invite" in membership.values()))
        if event is not None and event[0] == "setting":
            setting = event[1]
    return out


@given(server_histories)
def test_server_visible_is_the_spec_replayed(history: list[tuple[str, str] | None]) -> None:
    settings = tuple((n + 1, e[1]) for n, e in enumerate(history) if e and e[0] == "setting")
    users = []
    for user in ("0", "1"):
        members = tuple((n + 1, e[1]) for n, e in enumerate(history) if e and e[0] == user)
        users.append(Visibility(settings, members,
                                max((p for p, m in members if m == "join"), default=NO_JOIN)))
    view = ServerVisibility(tuple(users), settings)
    assert [view.visible(p) for p in range(1, len(history) + 1)] == server_replay(history)

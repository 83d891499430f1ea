"""The selected view (mailserver.imap.session.view): sequence sets resolve
like the naive expansion, and change folding keeps numbers consistent."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailserver.imap.session.view import ChangedMessage, SelectedView
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.sequence import SequenceSet

uid_lists = st.lists(st.integers(1, 60), unique=True, max_size=30).map(sorted)
numbers = st.one_of(st.none(), st.integers(1, 70))
sets = st.lists(st.tuples(numbers, numbers), min_size=1, max_size=4).map(
    lambda ranges: SequenceSet(tuple(ranges)))


def view_of(uids: list[int]) -> SelectedView:
    return SelectedView.from_uids(1, "INBOX", 7, False, uids, 10)


@given(uid_lists, sets)
def test_resolve_by_number_matches_naive_expansion(uids: list[int], seqset: SequenceSet) -> None:
    expected = sorted({uids[n - 1] for n in seqset.expand(len(uids))})
    assert view_of(uids).resolve(seqset, uid=False) == expected


@given(uid_lists, sets)
def test_resolve_by_uid_matches_naive_expansion(uids: list[int], seqset: SequenceSet) -> None:
    largest = uids[-1] if uids else 0
    expected = sorted(set(seqset.expand(largest)) & set(uids)) if uids else []
    assert view_of(uids).resolve(seqset, uid=True) == expected


def test_huge_uid_range_is_cheap() -> None:
    view = view_of([5, 9, 4000000000])
    assert view.resolve(SequenceSet(((1, 4294967295),)), uid=True) == [5, 9, 4000000000]


@given(uid_lists, st.data())
def test_expunge_numbers_replay_to_the_new_list(uids: list[int], data: st.DataObject) -> None:
    view = view_of(uids)
    gone = data.draw(st.sets(st.sampled_from(uids)) if uids else st.just(set()))
    responses = view.remove_now(gone, qresync=False)
    replay = list(uids)
    for response in responses:
        assert isinstance(response, r.ExpungeData)
        del replay[response.number - 1]
    assert replay == [u for u in uids if u not in gone] == list(view.uids)


def test_expunges_wait_when_not_allowed_and_new_messages_still_show() -> None:
    view = view_of([1, 2, 3])
    out = view.apply_changes([ChangedMessage(4, frozenset(), 12),
                              ChangedMessage(2, frozenset({"\\Seen"}), 11)], [3], 12,
                             allow_expunge=False, qresync=False, condstore=False)
    assert out == [r.ExistsData(4),
                   r.FetchData(2, (r.UidItem(2), r.FlagsItem(("\\Seen",))))]
    assert view.pending_expunge == {3}
    assert view.resolve(SequenceSet(((3, 3),)), uid=False) == [3]  # number 3 still UID 3
    assert view.flush_expunges(qresync=False) == [r.ExpungeData(3)]
    assert list(view.uids) == [1, 2, 4]
    assert view.modseq == 12


def test_qresync_reports_vanished_and_own_changes_are_not_repeated() -> None:
    view = view_of([1, 2, 3])
    view.note_own_change(1, 11)
    out = view.apply_changes([ChangedMessage(1, frozenset({"\\Seen"}), 11)], [2, 3], 12,
                             allow_expunge=True, qresync=True, condstore=True)
    assert out == [r.VanishedData(SequenceSet(((2, 3),)))]
    assert list(view.uids) == [1]

"""The selected mailbox as one session sees it (RFC 9051 2.3.1.2, 5.5, 7.4.1).

Every session keeps its own message-number -> UID map: another session's
APPEND or EXPUNGE changes the mailbox at once, but this session's sequence
numbers change only when it is told (EXISTS, EXPUNGE / VANISHED).  Expunges
may not be announced during FETCH, STORE or SEARCH (RFC 3501 5.5, RFC 9051
7.5.1), so they wait in ``pending_expunge`` and the UIDs stay in the map
until a command that may announce them completes.

Memory: UIDs are an ``array('I')`` (4 octets a message, no Python object per
message), never changed in place: a view that has caught up shares the
array of the server-wide mailbox state (``mailserver.imap.mailbox_states``)
with every other session on that mailbox.  Flags are not kept at all:
changes come from the store's ``changes_since`` and are reported as they
arrive.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mailserver.imap.wire import responses as r
from mailserver.imap.wire.sequence import SequenceSet

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


@dataclass(frozen=True)
class ChangedMessage:
    """One changed message as the store reports it (uid, flags, modseq)."""

    uid: int
    flags: frozenset[str]
    modseq: int


@dataclass
class SelectedView:
    """Sequence numbers, UIDs and the change cursor of one SELECT/EXAMINE."""

    mailbox_id: int
    name: str
    uidvalidity: int
    read_only: bool
    uids: array[int] = field(default_factory=lambda: array("I"))
    modseq: int = 0  # highest MODSEQ this session has caught up with
    pending_expunge: set[int] = field(default_factory=set)
    # (uid, modseq) of changes this session made and already reported itself.
    own_changes: dict[int, int] = field(default_factory=dict)
    # Keywords the client was told of in FLAGS / PERMANENTFLAGS (lower case).
    keywords: dict[str, str] = field(default_factory=dict)
    # \Recent (RFC 3501 2.3.2, IMAP4rev1 only): the UIDs recent to this
    # session, and the UID below which the store was already asked.
    recent: set[int] = field(default_factory=set)
    recent_asked: int = 0

    def note_recent(self, first_unclaimed: int, up_to: int) -> bool:
        """The store said UIDs from ``first_unclaimed`` below ``up_to`` are
        recent to this session; True when that added any."""
        low = max(first_unclaimed, self.recent_asked)
        added = self.uids[bisect_left(self.uids, low):bisect_left(self.uids, up_to)]
        self.recent_asked = max(self.recent_asked, up_to)
        before = len(self.recent)
        self.recent.update(added)
        return len(self.recent) > before

    @property
    def recent_count(self) -> int:
        return len(self.recent)

    def with_recent(self, response: r.FetchData) -> r.FetchData:
        """A FETCH response whose FLAGS shows ``\\Recent`` when the message is
        recent to this session (the flag is session state, never stored)."""
        if not self.recent or not 0 < response.number <= len(self.uids):
            return response
        if self.uids[response.number - 1] not in self.recent:
            return response
        items = tuple(r.FlagsItem(_flag_order((*item.flags, "\\Recent")))
                      if isinstance(item, r.FlagsItem) and "\\Recent" not in item.flags
                      else item for item in response.items)
        return r.FetchData(response.number, items)

    @classmethod
    def from_uids(cls, mailbox_id: int, name: str, uidvalidity: int, read_only: bool,
                  uids: Iterable[int], modseq: int) -> SelectedView:
        return cls(mailbox_id, name, uidvalidity, read_only, array("I", uids), modseq)

    # --- keywords -----------------------------------------------------------

    def keyword_announcement(self, flag_sets: Iterable[Iterable[str]]) -> list[r.Response]:
        """``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` naming every keyword so
        far when ``flag_sets`` hold one the client has not been told of
        (RFC 3501 7.2.6 / RFC 9051 7.3.5: a client learns a keyword from
        FLAGS before it may see it in a FETCH); nothing otherwise."""
        new = False
        for flags in flag_sets:
            for flag in flags:
                if not flag.startswith("\\") and flag.lower() not in self.keywords:
                    self.keywords[flag.lower()] = flag
                    new = True
        if not new:
            return []
        return self.flags_responses()

    def flags_responses(self) -> list[r.Response]:
        keywords = sorted(self.keywords.values(), key=str.lower)
        permanent = () if self.read_only else (*SYSTEM_FLAGS, *keywords, "\\*")
        return [r.FlagsData((*SYSTEM_FLAGS, *keywords)),
                r.Untagged("OK", "Flags permitted", r.PermanentFlagsCode(permanent))]

    # --- lookups ------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def largest_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def seq_of(self, uid: int) -> int | None:
        """The message number of ``uid`` (binary search: UIDs ascend)."""
        index = bisect_left(self.uids, uid)
        if index < len(self.uids) and self.uids[index] == uid:
            return index + 1
        return None

    def uid_at(self, seq: int) -> int:
        return self.uids[seq - 1]

    def resolve(self, sequence_set: SequenceSet, *, uid: bool,
                saved: Sequence[int] | None = None) -> list[int]:
        """The UIDs a set names, ascending, without building its whole range
        (``UID FETCH 1:4294967295`` must not make four billion numbers).

        Message numbers beyond EXISTS are simply not matched here; the
        caller decides whether that is an error (RFC 9051 6.4.5 says BAD for
        FETCH of a number that does not exist; clients widely expect a
        quiet result for UID sets, RFC 9051 6.4.9).
        """
        if sequence_set.saved:
            # SEARCHRES (RFC 5182 2.1): the saved UIDs that are still present.
            return sorted({u for u in (saved or ()) if self.seq_of(u) is not None})
        chosen: set[int] = set()
        uids = self.uids
        if uid:
            largest = self.largest_uid
            for first, last in sequence_set.ranges:
                low = largest if first is None else first
                high = largest if last is None else last
                if low > high:
                    low, high = high, low
                chosen.update(uids[bisect_left(uids, low):bisect_right(uids, high)])
        else:
            count = len(uids)
            for first, last in sequence_set.ranges:
                low = count if first is None else first
                high = count if last is None else last
                if low > high:
                    low, high = high, low
                chosen.update(uids[max(low, 1) - 1:min(high, count)])
        return sorted(chosen)

    def out_of_range(self, sequence_set: SequenceSet) -> bool:
        """Whether a message-number set names a number above EXISTS."""
        if sequence_set.saved:
            return False
        count = len(self.uids)
        return any((first or count) > count or (last or count) > count
                   for first, last in sequence_set.ranges)

    # --- changes --------------------------------------------------------------

    def note_own_change(self, uid: int, modseq: int) -> None:
        """A change this session already reported (STORE's own FETCH)."""
        self.own_changes[uid] = modseq

    def append_uids(self, uids: Iterable[int]) -> None:
        """Messages this session learnt of directly (APPEND, COPY into itself)."""
        last = self.largest_uid
        added = array("I")
        for uid in sorted(uids):
            if uid > last:
                added.append(uid)
                last = uid
        if added:
            self.uids = self.uids + added  # a new array: the old one may be shared

    def apply_changes(self, changed: Iterable[ChangedMessage], vanished: Iterable[int],
                      highestmodseq: int, *, allow_expunge: bool, qresync: bool,
                      condstore: bool) -> list[r.Response]:
        """Fold the store's changes into the view and return the untagged
        responses that tell the client (RFC 9051 7.4.1 EXPUNGE, 7.3.5 EXISTS,
        7.5.2 FETCH; RFC 7162 3.2.10 VANISHED).  Expunges come first, so
        every later number is already the new one."""
        out: list[r.Response] = []
        for uid in vanished:
            if self.seq_of(uid) is not None:
                self.pending_expunge.add(uid)
        if allow_expunge and self.pending_expunge:
            out.extend(self.flush_expunges(qresync=qresync))
        last = self.largest_uid
        flag_changes: list[ChangedMessage] = []
        added = array("I")
        for message in sorted(changed, key=lambda m: m.uid):
            if message.uid > last:
                if message.uid not in self.pending_expunge:
                    added.append(message.uid)
                    last = message.uid  # its flags come with the client's first FETCH
            elif self.own_changes.get(message.uid) != message.modseq:
                flag_changes.append(message)
        if added:
            self.uids = self.uids + added  # a new array: the old one may be shared
            out.append(r.ExistsData(len(self.uids)))
        for message in flag_changes:
            seq = self.seq_of(message.uid)
            if seq is None or message.uid in self.pending_expunge:
                continue
            items: list[r.FetchValue] = [r.UidItem(message.uid),
                                         r.FlagsItem(tuple(sorted(message.flags)))]
            if condstore:
                items.append(r.ModSeqItem(message.modseq))
            out.append(r.FetchData(seq, tuple(items)))
        self.own_changes.clear()
        self.modseq = max(self.modseq, highestmodseq)
        return out

    def flush_expunges(self, *, qresync: bool) -> list[r.Response]:
        """Announce and drop pending expunges: ``* n EXPUNGE`` from the highest
        number down (each number stays valid as the earlier ones are sent),
        or one ``* VANISHED`` with QRESYNC (RFC 7162 3.2.10)."""
        if not self.pending_expunge:
            return []
        gone = sorted(self.pending_expunge)
        self.pending_expunge.clear()
        out: list[r.Response] = []
        numbers = [seq for seq in (self.seq_of(uid) for uid in gone) if seq is not None]
        if qresync:
            out.append(r.VanishedData(SequenceSet.from_numbers(gone)))
        else:
            out.extend(r.ExpungeData(seq) for seq in reversed(numbers))
        keep = set(gone)
        self.uids = array("I", (uid for uid in self.uids if uid not in keep))
        self.recent -= keep
        return out

    def remove_now(self, uids: Iterable[int], *, qresync: bool) -> list[r.Response]:
        """Expunged by this session's own EXPUNGE/MOVE: announce at once
        (RFC 9051 6.4.3 sends EXPUNGE before the tagged OK)."""
        self.pending_expunge.update(u for u in uids if self.seq_of(u) is not None)
        return self.flush_expunges(qresync=qresync)


def _flag_order(flags: Iterable[str]) -> tuple[str, ...]:
    # System flags first, then keywords (as mailserver.imap.fetching orders them).
    return tuple(sorted(flags, key=lambda flag: (not flag.startswith("\\"), flag.lower())))

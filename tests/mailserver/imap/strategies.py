"""Hypothesis strategies for IMAP commands (shared by the property tests)."""

from __future__ import annotations

import datetime

from hypothesis import strategies as st

from mailserver.imap.wire import commands as c
from mailserver.imap.wire.fetch_items import (
    SIMPLE_ITEMS,
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchItem,
    Section,
)
from mailserver.imap.wire.search import (
    DATE_KEYS,
    FLAG_KEYS,
    TEXT_KEYS,
    SearchAnd,
    SearchDate,
    SearchFlagKey,
    SearchHeader,
    SearchKeyword,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSequence,
    SearchSize,
    SearchText,
)
from mailserver.imap.wire.sequence import MAX_NUMBER, SequenceSet

texts = st.text(alphabet=st.characters(blacklist_characters="\x00",
                                       blacklist_categories=("Cs",)), max_size=12)
tags = st.from_regex(r"\A[A-Za-z0-9.\]_-]{1,8}\Z")
atoms = st.from_regex(r"\A[A-Za-z0-9$_.-]{1,10}\Z")
upper_atoms = atoms.map(str.upper)
flags = st.one_of(atoms, st.sampled_from(["\\Seen", "\\Answered", "\\Deleted", "\\Draft"]))
flag_tuples = st.lists(flags, max_size=4).map(tuple)
mailboxes = texts.filter(lambda name: name.upper() != "INBOX") | st.just("INBOX")
numbers = st.integers(min_value=1, max_value=MAX_NUMBER)
seq_numbers = st.one_of(numbers, st.none())
sequence_sets = st.lists(st.tuples(seq_numbers, seq_numbers), min_size=1, max_size=5).map(
    lambda ranges: SequenceSet(tuple(ranges)))
any_sequence_sets = sequence_sets | st.just(SequenceSet.saved_result())
dates = st.dates(min_value=datetime.date(1000, 1, 1))
date_times = st.builds(
    lambda when, minutes: when.replace(
        microsecond=0, tzinfo=datetime.timezone(datetime.timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime.datetime(1000, 1, 2),
                 max_value=datetime.datetime(9999, 12, 30)),
    st.integers(min_value=-1439, max_value=1439))
field_names = st.from_regex(r"\A[A-Za-z0-9-]{1,10}\Z")
parts = st.lists(st.integers(min_value=1, max_value=999), max_size=3).map(tuple)
partials = st.none() | st.tuples(st.integers(0, 10**9), st.integers(1, 10**9))


@st.composite
def sections(draw: st.DrawFn) -> Section:
    part = draw(parts)
    choices = ["", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"] + (
        ["MIME"] if part else [])
    text = draw(st.sampled_from(choices)) or None
    fields = (tuple(draw(st.lists(field_names, min_size=1, max_size=3)))
              if text and text.startswith("HEADER.FIELDS") else ())
    return Section(part, text, fields)


fetch_attributes = st.one_of(
    st.sampled_from(sorted(SIMPLE_ITEMS)).map(FetchItem),
    st.builds(FetchBody, sections(), partials, st.booleans()),
    st.builds(FetchBinary, parts, partials, st.booleans()),
    st.builds(FetchBinarySize, parts),
)

leaf_keys = st.one_of(
    st.sampled_from(sorted(FLAG_KEYS)).map(SearchFlagKey),
    st.builds(SearchKeyword, atoms, st.booleans()),
    st.builds(SearchText, st.sampled_from(sorted(TEXT_KEYS)), texts),
    st.builds(SearchHeader, texts, texts),
    st.builds(SearchDate, st.sampled_from(sorted(DATE_KEYS)), dates),
    st.builds(SearchSize, st.sampled_from(["LARGER", "SMALLER"]), st.integers(0, 2**40)),
    st.builds(SearchSequence, any_sequence_sets, st.booleans()),
    st.builds(SearchModSeq, st.integers(0, 2**63 - 1),
              st.none() | st.tuples(st.from_regex(r"\A/flags/[a-z]{1,6}\Z"),
                                    st.sampled_from(["priv", "shared", "all"]))),
)
search_keys = st.recursive(leaf_keys, lambda inner: st.one_of(
    st.builds(SearchNot, inner),
    st.builds(SearchOr, inner, inner),
    st.lists(inner, min_size=1, max_size=3).map(lambda keys: SearchAnd(tuple(keys))),
), max_leaves=8)


@st.composite
def list_commands(draw: st.DrawFn, tags: st.SearchStrategy[str]) -> c.ListCommand:
    tag = draw(tags)
    selection = tuple(draw(st.lists(st.sampled_from(["SUBSCRIBED", "REMOTE", "SPECIAL-USE"]),
                                    max_size=2, unique=True)))
    if set(selection) - {"REMOTE"} and draw(st.booleans()):
        selection += ("RECURSIVEMATCH",)  # never alone or with REMOTE only (RFC 5258 3)
    patterns = tuple(draw(st.lists(texts, min_size=1, max_size=3)))
    options = draw(st.tuples(st.booleans(), st.booleans(), st.booleans()))
    status = draw(st.none() | st.lists(st.sampled_from(["MESSAGES", "UNSEEN", "SIZE"]),
                                       min_size=1, max_size=3).map(tuple))
    extended = bool(selection or len(patterns) > 1 or any(options) or status is not None
                    ) or draw(st.booleans())
    return c.ListCommand(tag, draw(texts), patterns, selection, *options, status, extended)


def commands(t: st.SearchStrategy[str]) -> st.SearchStrategy[c.Command]:
    """Every command, its tag drawn from ``t``.  Built once: a strategy made anew for
    each example (``tags.flatmap(...)``) cost most of the property tests' time."""
    qresync = st.builds(
        c.QresyncParams, numbers, st.integers(0, 2**63 - 1), st.none() | sequence_sets,
        st.none() | st.tuples(sequence_sets, sequence_sets))
    append_messages = st.one_of(
        st.builds(c.AppendMessage, st.binary(max_size=20).filter(lambda d: b"\0" not in d),
                  flag_tuples, st.none() | date_times, st.just(False)),
        st.builds(c.AppendMessage, st.binary(max_size=20), flag_tuples,
                  st.none() | date_times, st.just(True)))
    return st.one_of(
        st.builds(lambda kind, tag: kind(tag),
                  st.sampled_from([c.Capability, c.Noop, c.Logout, c.StartTls, c.Namespace,
                                   c.Idle, c.Check, c.Close, c.Unselect, c.Expunge]), t),
        st.builds(c.Expunge, t, sequence_sets),
        st.builds(c.Authenticate, t, upper_atoms, st.none() | st.binary(max_size=20)),
        st.builds(c.Login, t, texts, texts),
        st.builds(c.Enable, t, st.lists(upper_atoms, min_size=1, max_size=3).map(tuple)),
        st.builds(c.Select, t, mailboxes, st.booleans(), st.booleans(), st.none() | qresync),
        st.builds(c.Create, t, mailboxes, flag_tuples),
        st.builds(c.Delete, t, mailboxes),
        st.builds(c.Rename, t, mailboxes, mailboxes),
        st.builds(c.Subscribe, t, mailboxes),
        st.builds(c.Unsubscribe, t, mailboxes),
        list_commands(t),
        st.builds(c.Lsub, t, texts, texts),
        st.builds(c.Status, t, mailboxes, st.lists(st.sampled_from(
            ["MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
             "HIGHESTMODSEQ"]), min_size=1, max_size=4).map(tuple)),
        st.builds(c.Append, t, mailboxes,
                  st.lists(append_messages, min_size=1, max_size=3).map(tuple)),
        st.builds(c.GetQuota, t, texts),
        st.builds(c.GetQuotaRoot, t, mailboxes),
        st.builds(c.Id, t, st.none() | st.lists(st.tuples(texts, st.none() | texts),
                                                max_size=3).map(tuple)),
        st.builds(c.Compress, t, upper_atoms),
        st.builds(c.Search, t, search_keys, st.booleans(), st.none() | st.just("UTF-8"),
                  st.none() | st.lists(st.sampled_from(["MIN", "MAX", "ALL", "COUNT", "SAVE"]),
                                       max_size=3).map(tuple)),
        st.builds(lambda tag, s, a, u, cs, v: c.Fetch(tag, s, a, u, cs,
                                                     v and u and cs is not None),
                  t, any_sequence_sets,
                  st.lists(fetch_attributes, min_size=1, max_size=4).map(tuple),
                  st.booleans(), st.none() | st.integers(0, 2**63 - 1), st.booleans()),
        st.builds(c.Store, t, any_sequence_sets, st.sampled_from(["add", "remove", "replace"]),
                  flag_tuples, st.booleans(), st.booleans(),
                  st.none() | st.integers(0, 2**63 - 1)),
        st.builds(c.Copy, t, any_sequence_sets, mailboxes, st.booleans()),
        st.builds(c.Move, t, any_sequence_sets, mailboxes, st.booleans()),
    )


tagged_commands = commands(tags)

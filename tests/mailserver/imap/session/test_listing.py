"""LIST matching (mailserver.imap.session.listing), RFC 9051 6.3.9 / RFC 5258."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailserver.imap.session.listing import MailboxEntry, list_responses, matches

BOXES = [MailboxEntry("INBOX", None, True), MailboxEntry("Sent", "\\Sent", True),
         MailboxEntry("Klasse/7a", None, True), MailboxEntry("Klasse/7b", None, False),
         MailboxEntry("Klasse/7a/Bio", None, False)]


def names(lines: list) -> list[str]:
    return [line.mailbox for line in lines]


def test_star_and_percent() -> None:
    assert names(list_responses(BOXES, "", ("*",))) == [
        "INBOX", "Klasse", "Klasse/7a", "Klasse/7a/Bio", "Klasse/7b", "Sent"]
    top = list_responses(BOXES, "", ("%",))
    assert names(top) == ["INBOX", "Klasse", "Sent"]
    klasse = next(line for line in top if line.mailbox == "Klasse")
    assert klasse.attributes == ("\\Noselect", "\\HasChildren")
    assert names(list_responses(BOXES, "Klasse/", ("%",))) == ["Klasse/7a", "Klasse/7b"]
    assert names(list_responses(BOXES, "", ("inbox",))) == ["INBOX"]


def test_empty_pattern_gives_the_delimiter() -> None:
    (line,) = list_responses(BOXES, "", ("",))
    assert (line.attributes, line.delimiter, line.mailbox) == (("\\Noselect",), "/", "")


def test_special_use_and_subscribed_selection() -> None:
    special = list_responses(BOXES, "", ("*",), selection=("SPECIAL-USE",), extended=True)
    assert [(line.mailbox, line.attributes) for line in special] == [
        ("Sent", ("\\HasNoChildren", "\\Sent"))]
    subscribed = list_responses(BOXES, "", ("*",), selection=("SUBSCRIBED",), extended=True)
    assert names(subscribed) == ["INBOX", "Klasse/7a", "Sent"]
    assert all("\\Subscribed" in line.attributes for line in subscribed)
    recursive = list_responses(BOXES, "", ("%",), selection=("SUBSCRIBED", "RECURSIVEMATCH"),
                               extended=True)
    klasse = next(line for line in recursive if line.mailbox == "Klasse")
    assert klasse.childinfo == ("SUBSCRIBED",)


def test_lsub_shows_only_subscribed() -> None:
    assert names(list_responses(BOXES, "", ("*",), lsub=True)) == ["INBOX", "Klasse/7a", "Sent"]


names_st = st.text(alphabet="ab/", min_size=1, max_size=6)


@given(names_st)
def test_star_matches_everything_and_percent_stops_at_the_separator(name: str) -> None:
    assert matches(name, "*")
    assert matches(name, "%") == ("/" not in name)
    assert matches(name, name)

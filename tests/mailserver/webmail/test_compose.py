"""Reply and forward rules of the compose form (pure functions)."""

from __future__ import annotations

import email
import email.policy

from hypothesis import given
from hypothesis import strategies as st

from mailserver.webmail import compose as c
from mailserver.webmail.i18n import load_translations
from mailserver.webmail.reading import MessageView


def original(**fields: str) -> MessageView:
    values = {"uid": 3, "subject": "Ausflug", "sender": "Eva Eltern <eva@eltern.example>",
              "to": "anna@schule.test, Bernd <bernd@schule.test>", "cc": "", "date":
              "05.12.2026 10:00", "text": "Hallo,\n\nwann geht es los?", "attachments": []}
    values.update(fields)
    return MessageView(**values)  # type: ignore[arg-type]


def test_prefixes_are_not_stacked() -> None:
    assert c.reply_subject("AW: Re: WG: Ausflug") == "Re: Ausflug"
    assert c.reply_subject("Re[2]: aw:Ausflug") == "Re: Ausflug"
    assert c.forward_subject("Fwd: FW: Wtr: Ausflug") == "Fwd: Ausflug"
    assert c.reply_subject("") == "Re: (kein Betreff)"
    assert c.reply_subject("Rechnung: März") == "Re: Rechnung: März"  # "Re" of a word stays


@given(st.lists(st.sampled_from(["Re: ", "AW: ", "Aw:", "WG: ", "Fwd: ", "FW: ", "re[3]: "]),
                max_size=6), st.text(max_size=40))
def test_reply_of_a_reply_is_the_same_subject(prefixes: list[str], subject: str) -> None:
    once = c.reply_subject(subject)
    assert c.reply_subject("".join(prefixes) + subject) == once
    assert c.reply_subject(once) == once
    assert not once.startswith("Re: Re:")


def test_reply_goes_to_reply_to_and_reply_all_skips_me() -> None:
    message = original(reply_to="Elternbeirat <beirat@eltern.example>",
                       cc="anna@schule.test, carl@schule.test")
    mine = {"anna@schule.test"}
    assert c.reply_recipients(message, mine, reply_all=False) == (
        "Elternbeirat <beirat@eltern.example>", "")
    to, cc = c.reply_recipients(message, mine, reply_all=True)
    assert to == "Elternbeirat <beirat@eltern.example>"
    assert cc == "Bernd <bernd@schule.test>, carl@schule.test"
    to, cc = c.reply_recipients(original(), {"ANNA@schule.test"}, reply_all=True)
    assert (to, cc) == ("Eva Eltern <eva@eltern.example>", "Bernd <bernd@schule.test>")


def test_references_chain_and_quote() -> None:
    message = original(message_id="<3@eltern.example>", references="<1@x> <2@x>")
    assert c.references(message) == "<1@x> <2@x> <3@eltern.example>"
    assert c.references(original(message_id="<3@x>", in_reply_to="<2@x>")) == "<2@x> <3@x>"
    body = c.quoted_reply(message, "Anna Lehrerin")
    assert body == ("\n\n\n-- \nAnna Lehrerin\n\nAm 05.12.2026 10:00 schrieb "
                    "Eva Eltern <eva@eltern.example>:\n> Hallo,\n>\n> wann geht es los?\n")
    assert "\n\nAm 05.12.2026" in c.quoted_reply(message)  # blank line above attribution


def test_attribution_in_the_readers_language() -> None:
    """The quote line comes from the webmail's catalog: German by default, English
    for English readers (not "Am … schrieb" for everyone)."""
    english = load_translations()["en"]
    body = c.quoted_reply(original(), "", english)
    assert "\n\nOn 05.12.2026 10:00, Eva Eltern <eva@eltern.example> wrote:\n> Hallo," in body
    assert "schrieb" not in body
    assert "Eva Eltern <eva@eltern.example> wrote:\n" in c.quoted_reply(
        original(date=""), "", english)
    assert "Es schrieb Eva Eltern <eva@eltern.example>:\n" in c.quoted_reply(
        original(date=""))


def test_bare_logins_are_completed() -> None:
    assert c.complete_addresses("k.schaefer-woehler, Eva <eva@eltern.example>",
                                "schule.test") == (
        "k.schaefer-woehler@schule.test, Eva <eva@eltern.example>")
    assert c.recipients("a@x, b@x", "A@x", "c@x") == ["a@x", "b@x", "c@x"]


def test_built_message_threads_and_hides_bcc() -> None:
    form = c.ComposeForm(to="eva@eltern.example", bcc="chef@schule.test", subject="Re: Ausflug",
                         body="Um 8.\n", in_reply_to="<3@x>", references="<1@x> <3@x>")
    forwarded = b"From: x@y\r\nSubject: Alt\r\n\r\nalter Text\r\n"
    sent = email.message_from_bytes(
        c.build_message(from_name="Anna", sender="anna@schule.test", form=form,
                        uploads=[c.Upload("a.txt", "text/plain", b"A")], forwarded=forwarded),
        policy=email.policy.default)
    assert sent["In-Reply-To"] == "<3@x>" and sent["References"] == "<1@x> <3@x>"
    assert "Bcc" not in sent
    parts = list(sent.iter_attachments())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/rfc822"]
    assert parts[1].get_filename() == "Alt.eml"
    assert parts[1].get_content()["Subject"] == "Alt"
    draft = email.message_from_bytes(
        c.build_message(from_name="Anna", sender="anna@schule.test", form=form, keep_bcc=True),
        policy=email.policy.default)
    assert draft["Bcc"] == "chef@schule.test"


def test_inline_forward_header_block_in_the_writers_language() -> None:
    """The forwarded message's header block follows the catalog like the quote line."""
    message = original(cc="carl@schule.test")
    german = c.forwarded_inline(message)
    assert "-------- Weitergeleitete Nachricht --------\nBetreff: " in german
    assert "\nVon: Eva Eltern <eva@eltern.example>\n" in german and "\nCc: carl@" in german
    english = c.forwarded_inline(message, "", load_translations()["en"])
    assert "-------- Forwarded Message --------\nSubject: " in english
    assert "\nDate: 05.12.2026 10:00\nFrom: Eva Eltern <eva@eltern.example>\nTo: " in english
    assert not any(word in english for word in ("Weitergeleitete", "Betreff", "Datum", "Von:"))

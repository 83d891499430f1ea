"""Envelope address parsing (RFC 5321 4.1.2) and the relay tricks it must neutralise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailserver.smtp.addresses import (
    AddressError,
    Mailbox,
    local_key,
    parse_mailbox,
    parse_path,
    split_path_argument,
)

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
atoms = st.text(alphabet=ATEXT, min_size=1, max_size=10)
dot_strings = st.lists(atoms, min_size=1, max_size=4).map(".".join).filter(lambda s: len(s) <= 64)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
quoted_content = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                         min_size=1, max_size=20)


@pytest.mark.parametrize(("path", "expected"), [
    ("<user@schule.test>", Mailbox("user", "schule.test")),
    ("<User@Schule.TEST>", Mailbox("User", "schule.test")),
    ("<@a.example,@b.example:user@x.example>", Mailbox("user", "x.example")),
    ('<"user"@x.example>', Mailbox("user", "x.example")),
    ('<"user@other"@schule.test>', Mailbox("user@other", "schule.test")),
    ("<user%other@schule.test>", Mailbox("user%other", "schule.test")),
    ("<a!b@schule.test>", Mailbox("a!b", "schule.test")),
    ("<user@[127.0.0.1]>", Mailbox("user", "[127.0.0.1]")),
    ("<user@[IPv6:::1]>", Mailbox("user", "[ipv6:::1]")),
    ("<ü@bücher.example>", Mailbox("ü", "xn--bcher-kva.example")),
])
def test_valid_paths(path: str, expected: Mailbox) -> None:
    assert parse_path(path) == expected


def test_null_path() -> None:
    assert parse_path("<>") is None


@pytest.mark.parametrize("path", [
    "user@x.example", "<user@other@schule.test>", "<user@schule.test.>", "<user>",
    "<user(comment)@x.example>", "<user @x.example>", "<a..b@x.example>", "<.a@x.example>",
    '<""@x.example>', "<a@-x.example>", "<a@x..example>", "<a@x\x00y>", "<a\x00@x>",
    "<a@[999.1.1.1]>", "<a@[not literal]>", "<@a.example:>", "<@a..b:u@x>", "<a@x",
    "<" + "a" * 65 + "@x.example>", "<a@" + "b" * 64 + ".example>", "<a@x\udcff>",
])
def test_invalid_paths(path: str) -> None:
    with pytest.raises(AddressError):
        parse_path(path)


def test_split_argument() -> None:
    assert split_path_argument("<a@b.example> SIZE=10 BODY=8BITMIME") == (
        "<a@b.example>", "SIZE=10 BODY=8BITMIME")
    assert split_path_argument('<"a>b"@x.example>') == ('<"a>b"@x.example>', "")
    with pytest.raises(AddressError):
        split_path_argument("<a@b.example>SIZE=10")
    with pytest.raises(AddressError):
        split_path_argument("a@b.example")


@pytest.mark.parametrize(("mailbox", "key"), [
    (Mailbox("Anna.Schmidt", "schule.test"), "anna.schmidt"),
    (Mailbox("user%other", "schule.test"), None),
    (Mailbox("user@other", "schule.test"), None),
    (Mailbox("a!b", "schule.test"), None),
    (Mailbox("a+tag", "schule.test"), None),
])
def test_local_key(mailbox: Mailbox, key: str | None) -> None:
    assert local_key(mailbox) == key


@given(st.text(max_size=300))
def test_never_crashes_on_any_text(text: str) -> None:
    try:
        mailbox = parse_path(text)
    except AddressError:
        return
    if mailbox is not None:
        assert parse_path(f"<{mailbox}>") == mailbox


@given(st.binary(max_size=200))
def test_never_crashes_on_surrogate_escaped_bytes(raw: bytes) -> None:
    text = raw.decode("utf-8", "surrogateescape")
    try:
        path, _params = split_path_argument(text)
        parse_path(path)
    except AddressError:
        pass


@given(dot_strings, domains)
def test_dot_atoms_round_trip(local: str, domain: str) -> None:
    mailbox = parse_path(f"<{local}@{domain}>")
    assert mailbox == Mailbox(local, domain)
    assert str(mailbox) == f"{local}@{domain}"
    assert parse_mailbox(str(mailbox)) == mailbox


@given(quoted_content, domains)
def test_quoted_local_parts_round_trip(content: str, domain: str) -> None:
    quoted = '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'
    mailbox = parse_path(f"<{quoted}@{domain}>")
    assert mailbox is not None and mailbox.local_part == content
    assert parse_path(f"<{mailbox}>") == mailbox
    # Whatever is quoted stays inside the local part: the domain alone routes.
    assert mailbox.domain == domain


@given(dot_strings, domains)
def test_domain_case_is_folded_and_local_case_kept(local: str, domain: str) -> None:
    mailbox = parse_path(f"<{local}@{domain.upper()}>")
    assert mailbox is not None
    assert mailbox.domain == domain
    assert mailbox.local_part == local


@given(st.lists(domains, min_size=1, max_size=3), dot_strings, domains)
def test_source_routes_are_dropped(route: list[str], local: str, domain: str) -> None:
    adl = ",".join(f"@{hop}" for hop in route)
    assert parse_path(f"<{adl}:{local}@{domain}>") == Mailbox(local, domain)


@given(dot_strings, domains, domains)
def test_a_second_at_sign_never_parses(local: str, other: str, ours: str) -> None:
    with pytest.raises(AddressError):
        parse_path(f"<{local}@{other}@{ours}>")

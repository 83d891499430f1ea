"""BODYSTRUCTURE, BODY, ENVELOPE, BODY[section] and BINARY[section] of
generated MIME trees, compared with an independent model: the same bytes
read by the standard library's email package (issue 14).

The trees cover multipart nesting (mixed, alternative, odd subtypes),
message/rfc822 parts with their own trees, base64 / quoted-printable /
8bit leaves, odd content types (text/x-myown, application/x-odd) and body
parts without any header (with and without the blank line), so every
section-spec form of RFC 3501 6.4.5 is asked of every part: BODY[n],
BODY[n.m], BODY[n.MIME], BODY[n.HEADER] / BODY[n.TEXT] of message/rfc822
parts, BINARY[n] and BINARY.SIZE[n] (RFC 3516 4.2), partial <o.l>.
"""

from __future__ import annotations

import base64
import email
import email.utils
import quopri
from dataclasses import dataclass
from email.message import Message
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.imap.fetching import MessageRecord, fetch_response_items
from mailserver.imap.mime import (
    MultiPart,
    SinglePart,
    binary,
    binary_size,
    bodystructure,
    envelope,
    section,
)
from mailserver.imap.mime.addresses import tokenize
from mailserver.imap.mime.types import Address
from mailserver.imap.wire.fetch_items import FetchBinarySize, Section
from mailserver.imap.wire.serializer import body_structure_bytes
from tests.support.properties import examples

# Body text never holds "-" or ":" (no accidental delimiter, no header-like
# first line in a header-less part) nor "=" (quoted-printable stays exact).
_TEXT = st.text(alphabet="abcdefghij XYZ0123456789.,!?", min_size=1, max_size=40)
_LINES = st.lists(_TEXT, min_size=1, max_size=4).map(lambda lines: "\r\n".join(lines))


@dataclass
class Leaf:
    content_type: str | None  # None: no header at all
    encoding: str
    payload: bytes  # decoded content
    blank_line: bool = True  # header-less part written with its blank line


@dataclass
class Multi:
    subtype: str
    children: list[Node]


@dataclass
class Rfc822:
    message: Node


Node = Leaf | Multi | Rfc822

_leaf_types = st.sampled_from(["text/plain", "text/html", "text/x-myown",
                               "application/octet-stream", "image/png", "application/x-odd"])


@st.composite
def leaves(draw: st.DrawFn) -> Leaf:
    if draw(st.booleans()) and draw(st.booleans()):
        # A part with no header: RFC 2046 5.1.1 makes it text/plain, us-ascii.
        text = draw(_LINES)
        return Leaf(None, "7bit", text.encode(), blank_line=draw(st.booleans()))
    content_type = draw(_leaf_types)
    encoding = draw(st.sampled_from(["7bit", "8bit", "base64", "quoted-printable"]))
    if encoding == "8bit":
        payload = draw(_LINES).encode() + "äöü ß".encode()
    elif encoding == "7bit":
        payload = draw(_LINES).encode()
    else:
        payload = draw(st.binary(min_size=0, max_size=60)) if not content_type.startswith(
            "text/") else draw(_LINES).encode("utf-8") + "Grüße".encode()
    return Leaf(content_type, encoding, payload)


def trees(depth: int = 3) -> st.SearchStrategy[Node]:
    if depth == 0:
        return leaves()
    inner = trees(depth - 1)
    return st.one_of(
        leaves(),
        st.builds(Multi, st.sampled_from(["mixed", "alternative", "related", "x-odd"]),
                  st.lists(inner, min_size=1, max_size=3)),
        st.builds(Rfc822, inner),
    )


def _encode(leaf: Leaf) -> bytes:
    if leaf.encoding == "base64":
        return base64.encodebytes(leaf.payload).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    if leaf.encoding == "quoted-printable":
        return quopri.encodestring(leaf.payload).replace(b"\n", b"\r\n")
    return leaf.payload


class Writer:
    """Renders a tree as RFC 5322 / MIME bytes with unique boundaries."""

    def __init__(self) -> None:
        self.count = 0

    def entity(self, node: Node, top: bool = False) -> bytes:
        head = (b"From: Lehrer <lehrer@schule.test>\r\nTo: anna@schule.test\r\n"
                b"Subject: Baum\r\nMIME-Version: 1.0\r\n") if top else b""
        if isinstance(node, Leaf):
            if node.content_type is None:
                if top:
                    return head + b"\r\n" + node.payload
                return (b"\r\n" if node.blank_line else b"") + node.payload
            charset = "; charset=utf-8" if node.content_type.startswith("text/") else ""
            return (head + f"Content-Type: {node.content_type}{charset}\r\n"
                    f"Content-Transfer-Encoding: {node.encoding}\r\n\r\n".encode()
                    + _encode(node))
        if isinstance(node, Rfc822):
            return head + b"Content-Type: message/rfc822\r\n\r\n" + self.entity(
                node.message, top=True)
        self.count += 1
        boundary = f"=_b{self.count}".encode()
        out = head + b'Content-Type: multipart/%s; boundary="%s"\r\n\r\n' % (
            node.subtype.encode(), boundary)
        for child in node.children:
            out += b"--" + boundary + b"\r\n" + self.entity(child) + b"\r\n"
        return out + b"--" + boundary + b"--\r\n"


def _payload_bytes(part: Message) -> bytes:
    """The part's body octets as the email package holds them (it decodes
    8-bit text with its charset in ``get_payload()``; ``decode=True`` of
    an identity encoding gives the octets back)."""
    if part.get("Content-Transfer-Encoding", "7bit").lower() in ("7bit", "8bit"):
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        return data
    payload = part.get_payload()
    assert isinstance(payload, str)
    return payload.encode("ascii", "surrogateescape")


def _check_structure(ours: SinglePart | MultiPart, model: Message) -> None:
    if model.is_multipart() and model.get_content_maintype() == "multipart":
        assert isinstance(ours, MultiPart)
        assert ours.subtype.decode().lower() == model.get_content_subtype()
        children = model.get_payload()
        assert len(ours.parts) == len(children)
        for part, child in zip(ours.parts, children, strict=True):
            _check_structure(part, child)
        return
    assert isinstance(ours, SinglePart)
    assert ours.type.decode().lower() == model.get_content_maintype()
    assert ours.subtype.decode().lower() == model.get_content_subtype()
    assert ours.encoding.decode().lower() == model.get("Content-Transfer-Encoding",
                                                       "7bit").lower()
    if model.get_content_type() == "message/rfc822":
        inner = model.get_payload(0)
        assert ours.body is not None
        _check_structure(ours.body, inner)
        return
    assert ours.size == len(_payload_bytes(model))


def _paths(model: Message, prefix: tuple[int, ...] = ()
           ) -> list[tuple[tuple[int, ...], Message]]:
    """(part number, model part) of every body part (RFC 3501 6.4.5 numbering)."""
    out: list[tuple[tuple[int, ...], Message]] = []
    if model.get_content_maintype() == "multipart":
        for number, child in enumerate(model.get_payload(), 1):
            path = (*prefix, number)
            out.append((path, child))
            if child.get_content_type() == "message/rfc822":
                out.extend(_message_paths(child.get_payload(0), path))
            elif child.get_content_maintype() == "multipart":
                out.extend(_paths(child, path))
    else:
        out.append(((*prefix, 1), model))
    return out


def _message_paths(message: Message, prefix: tuple[int, ...]
                   ) -> list[tuple[tuple[int, ...], Message]]:
    if message.get_content_maintype() == "multipart":
        return _paths(message, prefix)
    return [((*prefix, 1), message)]


@settings(max_examples=examples(200), deadline=None)
@given(trees())
def test_generated_trees_match_the_email_package(tree: Node) -> None:
    """BODYSTRUCTURE / BODY (RFC 3501 7.4.2), BODY[n], BODY[n.MIME],
    BODY[n.HEADER] / BODY[n.TEXT] (RFC 3501 6.4.5), BINARY[n] and
    BINARY.SIZE[n] (RFC 3516 4.2) of every part agree with the email
    package's reading of the same bytes."""
    raw = Writer().entity(tree, top=True)
    model = email.message_from_bytes(raw, policy=compat32)
    _check_structure(bodystructure(raw), model)
    _check_structure(bodystructure(raw, extended=False), model)
    # BODY (non-extensible) is BODYSTRUCTURE without the extension data.
    plain = body_structure_bytes(bodystructure(raw, extended=False), extended=False)
    assert plain == body_structure_bytes(bodystructure(raw), extended=False)
    for path, part in _paths(model):
        if part.get_content_maintype() == "multipart":
            continue
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload(0)
            header = section(raw, Section(path, "HEADER"))
            assert header is not None
            parsed = email.message_from_bytes(header, policy=compat32)
            assert parsed.items() == inner.items()
            text = section(raw, Section(path, "TEXT"))
            assert text is not None and header + text == section(raw, Section(path))
            continue
        body = section(raw, Section(path))
        assert body == _payload_bytes(part), path
        decoded = part.get_payload(decode=True)
        assert binary(raw, path) == decoded
        assert binary_size(raw, path) == len(decoded)
        if len(body) > 2:
            assert section(raw, Section(path), (1, len(body) - 2)) == body[1:-1]
            assert binary(raw, path, (1, 1)) == decoded[1:2]
        if path != (1,) or model.get_content_maintype() == "multipart":
            mime = section(raw, Section(path, "MIME"))
            assert mime is not None
            assert email.message_from_bytes(mime + b"x", policy=compat32).items() == (
                part.items())
            assert mime + body in raw


def test_first_part_without_header() -> None:
    """RFC 3501 6.4.5 / RFC 2046 5.1.1: a body part with no header lines
    (the delimiter line directly followed by "hello") is text/plain and
    BODY[1] is its text, not "" (issue 14)."""
    raw = (b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nhello\r\n"
           b"--XX\r\nContent-Type: text/x-myown\r\n\r\nmine\r\n--XX--\r\n")
    assert section(raw, Section((1,))) == b"hello"
    assert section(raw, Section((1,), "MIME")) == b""
    assert binary_size(raw, (1,)) == 5
    structure = bodystructure(raw, extended=False)
    assert body_structure_bytes(structure, extended=False) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 1)'
        b'("text" "x-myown" ("charset" "us-ascii") NIL NIL "7bit" 4 1) "mixed")')


def test_binary_size_through_fetch() -> None:
    """RFC 3516 4.2: BINARY.SIZE[n] is the decoded size, for base64 and
    quoted-printable parts alike (issue 14: it answered 0)."""
    raw = (b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n--XX\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n--XX--\r\n")
    import datetime as dt

    record = MessageRecord(1, 1, frozenset(), dt.datetime.now(dt.UTC), len(raw), 1)
    result = fetch_response_items((FetchBinarySize((1,)), FetchBinarySize((2,))),
                                  record, raw)
    assert [item.size for item in result.items] == [11, 7]


def test_multipart_without_parts_still_has_one_body() -> None:
    """RFC 3501 9 ``body-type-mpart = 1*body``: a multipart whose body holds
    no delimiter is answered with one empty text/plain part, never
    ``("mixed")``."""
    raw = b"Content-Type: multipart/mixed; boundary=XX\r\n\r\nno parts here\r\n"
    for extended in (False, True):
        text = body_structure_bytes(bodystructure(raw, extended), extended)
        assert text.startswith(b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0')


# --- ENVELOPE addresses ------------------------------------------------------

_words = st.text(alphabet="abcdefghijXYZ", min_size=1, max_size=8)
_local = st.text(alphabet="abcdefghij0123456789.", min_size=1, max_size=8).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
_domains = st.lists(_words, min_size=1, max_size=3).map(".".join)


@st.composite
def mailboxes(draw: st.DrawFn) -> tuple[bytes, bytes | None, bytes, bytes]:
    """(header text, expected name, mailbox, host) in every RFC 5322 3.4 form."""
    local, domain = draw(_local), draw(_domains)
    spec = f"{local}@{domain}"
    name = " ".join(draw(st.lists(_words, min_size=1, max_size=3)))
    form = draw(st.sampled_from(["bare", "angle", "phrase", "quoted", "comma", "comment",
                                 "encoded", "escaped", "phrase-comment"]))
    if form == "bare":
        return spec.encode(), None, local.encode(), domain.encode()
    if form == "angle":
        return f"<{spec}>".encode(), None, local.encode(), domain.encode()
    if form == "phrase":
        text, expected = f"{name} <{spec}>", name
    elif form == "quoted":
        text, expected = f'"{name}" <{spec}>', name
    elif form == "comma":
        text, expected = f'"{name}, Dr." <{spec}>', f"{name}, Dr."
    elif form == "comment":
        text, expected = f"{spec} ({name})", name
    elif form == "encoded":
        word = f"=?utf-8?q?{name.replace(' ', '_')}?="
        text, expected = f"{word} <{spec}>", word
    elif form == "escaped":
        text, expected = f'"{name} \\"x\\"" <{spec}>', f'{name} "x"'
    else:
        text, expected = f"{name} (Klasse 7a) <{spec}>", name
    return text.encode(), expected.encode(), local.encode(), domain.encode()


_entries = st.one_of(
    mailboxes().map(lambda m: ("mailbox", m)),
    st.tuples(_words, st.lists(mailboxes(), max_size=3)).map(lambda g: ("group", g)))


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(_entries, min_size=1, max_size=4))
def test_envelope_address_forms(entries: list) -> None:
    """ENVELOPE address lists (RFC 3501 7.4.2): every display-name form
    (phrase, quoted with comma or escapes, comment, encoded word kept raw)
    and group syntax as ``(NIL NIL "group" NIL) ... (NIL NIL NIL NIL)``;
    the addresses agree with ``email.utils.getaddresses``."""
    texts: list[bytes] = []
    expected: list[Address] = []
    for kind, value in entries:
        if kind == "mailbox":
            texts.append(value[0])
            expected.append(Address(value[1], None, value[2], value[3]))
        else:
            group, members = value
            texts.append(group.encode() + b": " + b", ".join(m[0] for m in members) + b";")
            expected.append(Address(None, None, group.encode(), None))
            expected.extend(Address(m[1], None, m[2], m[3]) for m in members)
            expected.append(Address(None, None, None, None))
    value = b", ".join(texts)
    raw = b"From: " + value + b"\r\nTo: " + value + b"\r\nSubject: x\r\n\r\nbody\r\n"
    env = envelope(raw)
    assert env.from_ == tuple(expected)
    assert env.to == tuple(expected)
    model = [pair for pair in email.utils.getaddresses([value.decode()]) if pair != ("", "")]
    ours = [((a.name or b"").decode(), f"{a.mailbox.decode()}@{a.host.decode()}")
            for a in expected if a.host is not None and a.mailbox is not None]
    assert [address for _, address in ours] == [address for _, address in model]


# --- the tokenizer against the character-by-character one it replaced ------

_REFERENCE_SPECIALS = b'()<>@,;:\\".[]'


def reference_tokenize(value: bytes) -> list[tuple[str, bytes]]:
    tokens: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(value):
        char = value[pos:pos + 1]
        if char in (b" ", b"\t", b"\r", b"\n"):
            pos += 1
        elif char == b"(":
            depth = 0
            start = pos + 1
            end = len(value)
            while pos < len(value):  # comments nest (RFC 5322 3.2.2)
                if value[pos:pos + 1] == b"\\":
                    pos += 1
                elif value[pos:pos + 1] == b"(":
                    depth += 1
                elif value[pos:pos + 1] == b")":
                    depth -= 1
                    if depth == 0:
                        end = pos
                        pos += 1
                        break
                pos += 1
            # Kept only as a name for an address without a phrase.
            tokens.append(("comment", value[start:end].strip(b" \t")))
        elif char == b'"':
            pos += 1
            text = bytearray()
            while pos < len(value) and value[pos:pos + 1] != b'"':
                if value[pos:pos + 1] == b"\\" and pos + 1 < len(value):
                    pos += 1
                text += value[pos:pos + 1]
                pos += 1
            pos += 1
            tokens.append(("quoted", bytes(text)))
        elif char in b"<>@,;:" or char == b".":
            tokens.append(("special", char))
            pos += 1
        else:
            start = pos
            while pos < len(value) and value[pos:pos + 1] not in (
                    b" ", b"\t", b"\r", b"\n") and value[pos] not in _REFERENCE_SPECIALS:
                pos += 1
            if pos == start:  # a lone ")", "[", "]" or "\\": keep it as text
                pos += 1
            tokens.append(("atom", value[start:pos]))
    return tokens


_ADDRESS_OCTETS = st.lists(st.sampled_from(
    [b" ", b"\t", b"\r\n", b"(", b")", b"<", b">", b"@", b",", b";", b":", b".", b"[", b"]",
     b'"', b"\\", b"a", b"Bc", b"=?utf-8?q?x?=", b"\xc3\xa4", b"\x00"]), max_size=30).map(b"".join)


@settings(max_examples=examples(500), deadline=None)
@given(st.one_of(st.binary(max_size=60), _ADDRESS_OCTETS))
def test_tokenizer_matches_the_reference(value: bytes) -> None:
    """The regular-expression tokenizer of ENVELOPE addresses gives the
    same tokens as the plain loop (RFC 5322 3.2: atoms, quoted strings with
    quoted-pairs, nested comments, specials) on any input."""
    assert tokenize(value) == reference_tokenize(value)

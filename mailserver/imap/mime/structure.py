"""BODYSTRUCTURE and BODY (RFC 3501 7.4.2, RFC 9051 7.5.2) of raw message bytes."""

from __future__ import annotations

from email.message import Message
from email.utils import encode_rfc2231

from mailserver.imap.mime.entity import Entity, parse_entity
from mailserver.imap.mime.envelope import envelope_of_header
from mailserver.imap.mime.types import (
    BodyStructure,
    Disposition,
    Extension,
    MultiPart,
    Params,
    SinglePart,
)


def _raw(text: str) -> bytes:
    # compat32 decodes header bytes as ASCII with surrogateescape: undo it exactly.
    return text.encode("utf-8", "surrogateescape")


def count_lines(body: bytes) -> int:
    """Lines of a body: its line ends, plus a last unterminated line."""
    if not body:
        return 0
    return body.count(b"\n") + (0 if body.endswith(b"\n") else 1)


def _params(headers: Message, name: str) -> Params:
    """Parameters of Content-Type / Content-Disposition, names lower-cased
    by the email package; RFC 2231 values it merged are re-encoded."""
    if name not in headers:
        return ()
    found = headers.get_params(header=name) or []
    params: list[tuple[bytes, bytes]] = []
    for key, value in found[1:]:
        if isinstance(value, tuple):
            charset, language, text = value
            params.append((_raw(key + "*"), _raw(encode_rfc2231(text, charset, language))))
        else:
            params.append((_raw(key), _raw(value)))
    return tuple(params)


def _header(headers: Message, name: str) -> bytes | None:
    value = headers.get(name)
    if value is None:
        return None
    text = _raw(str(value)).replace(b"\r", b"").replace(b"\n", b"").strip(b" \t")
    return text or None


def _extension(entity: Entity, single: bool) -> Extension:
    headers = entity.headers
    disposition = None
    if "Content-Disposition" in headers:
        kind = (headers.get_params(header="Content-Disposition") or [("", "")])[0][0]
        if kind:
            disposition = Disposition(_raw(kind.lower()),
                                      _params(headers, "Content-Disposition"))
    language = _header(headers, "Content-Language")
    languages = (tuple(_raw(x.strip()) for x in language.decode("utf-8", "surrogateescape")
                       .split(",") if x.strip()) or None) if language else None
    return Extension(
        md5=_header(headers, "Content-MD5") if single else None,
        disposition=disposition,
        language=languages,
        location=_header(headers, "Content-Location"),
    )


def structure_of(entity: Entity, extended: bool = True) -> BodyStructure:
    """The body structure of one entity (a message or a body part)."""
    headers = entity.headers
    maintype, subtype = entity.content_type
    params = _params(headers, "Content-Type")
    extension = _extension(entity, single=not entity.is_multipart) if extended else None
    if entity.is_multipart:
        parts = tuple(structure_of(child, extended) for child in entity.children)
        return MultiPart(
            parts=parts or (_empty_text(extended),),
            subtype=_raw(subtype),
            params=params,
            extension=extension,
        )
    if not params and maintype == "text":
        # RFC 2045 5.2: text without a charset is us-ascii; Dovecot says so.
        params = ((b"charset", b"us-ascii"),)
    encoding = _header(headers, "Content-Transfer-Encoding") or b"7bit"
    lines = None
    envelope = None
    body = None
    if entity.is_rfc822 and entity.encapsulated is not None:
        envelope = envelope_of_header(entity.encapsulated.header)
        body = structure_of(entity.encapsulated, extended)
        lines = count_lines(entity.body)
    elif maintype == "text":
        lines = count_lines(entity.body)
    return SinglePart(
        type=_raw(maintype),
        subtype=_raw(subtype),
        params=params,
        id=_header(headers, "Content-ID"),
        description=_header(headers, "Content-Description"),
        encoding=encoding,
        size=len(entity.body),
        lines=lines,
        envelope=envelope,
        body=body,
        extension=extension,
    )


def _empty_text(extended: bool) -> SinglePart:
    """The part a multipart without any body part is shown with: the
    grammar needs at least one (``body-type-mpart = 1*body``, RFC 3501 9),
    and an empty text/plain is what Dovecot answers."""
    return SinglePart(b"text", b"plain", ((b"charset", b"us-ascii"),), None, None, b"7bit",
                      0, lines=0, extension=Extension() if extended else None)


def bodystructure(message: bytes, extended: bool = True) -> BodyStructure:
    """BODYSTRUCTURE (``extended``) or BODY (not) of a whole message."""
    return structure_of(parse_entity(message), extended)

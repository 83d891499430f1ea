"""Request authentication between servers (Matrix Server-Server API, "Request
Authentication"): the ``X-Matrix`` Authorization scheme.

The origin signs a JSON object of the request's method, URI (path and query as
sent), origin, destination and, when there is one, the parsed JSON body; the
header carries the origin, destination, key id and signature as auth-params
(RFC 9110 11.2: token or quoted-string values).  Parsing is pure; checking the
signature needs the origin's key, which the caller fetches (``keyring``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from federation.matrix.signed_json import SigningKey, verify_signature

SCHEME = "X-Matrix"
# One auth-param: a name, '=', a quoted-string (with \-escapes) or a token.  The spec
# asks recipients to allow ':' in unquoted values (older servers send key=ed25519:abc).
_PARAM = re.compile(
    r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z0-9!#$%&\'*+.^_`|~:-]+))\s*')
MAX_HEADER_LENGTH = 2048


class AuthorizationError(ValueError):
    """An Authorization header that is missing, malformed or does not verify."""


@dataclass(frozen=True)
class XMatrixAuth:
    origin: str
    destination: str | None
    key_id: str
    signature: str


def request_json(method: str, uri: str, origin: str, destination: str,
                 content: Any = None) -> dict[str, Any]:
    """The object whose signature authenticates a request."""
    signed: dict[str, Any] = {"method": method.upper(), "uri": uri, "origin": origin,
                              "destination": destination}
    if content is not None:
        signed["content"] = content
    return signed


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization_header(key: SigningKey, origin: str, destination: str, method: str,
                         uri: str, content: Any = None) -> str:
    """The ``Authorization`` value for a request from ``origin`` to ``destination``."""
    signed = key.sign_json(request_json(method, uri, origin, destination, content), origin)
    signature = signed["signatures"][origin][key.key_id]
    params = (("origin", origin), ("destination", destination), ("key", key.key_id),
              ("sig", signature))
    # One space after the scheme and lower-case names: what older servers expect.
    return f"{SCHEME} " + ",".join(f"{name}={_quote(value)}" for name, value in params)


def parse_authorization(header: str) -> XMatrixAuth:
    """The parameters of one ``X-Matrix`` header; ``AuthorizationError`` if malformed."""
    if len(header) > MAX_HEADER_LENGTH:
        raise AuthorizationError("Authorization header too long")
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        raise AuthorizationError("not an X-Matrix Authorization header")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None:
            raise AuthorizationError("malformed X-Matrix parameters")
        name = match.group(1).lower()
        quoted, token = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token
        if name in params:
            raise AuthorizationError(f"X-Matrix parameter {name} given twice")
        params[name] = value
        position = match.end()
        if position < len(rest):
            if rest[position] != ",":
                raise AuthorizationError("malformed X-Matrix parameters")
            position += 1
    for required in ("origin", "key", "sig"):
        if not params.get(required):
            raise AuthorizationError(f"X-Matrix header without {required}")
    if not params["key"].startswith("ed25519:"):
        raise AuthorizationError("only ed25519 keys are supported")
    return XMatrixAuth(origin=params["origin"], destination=params.get("destination"),
                       key_id=params["key"], signature=params["sig"])


def verify_request(auth: XMatrixAuth, public_key: str, *, method: str, uri: str,
                   own_name: str, content: Any = None) -> None:
    """Raise ``AuthorizationError`` unless ``auth`` signs this request to ``own_name``."""
    if auth.destination is not None and auth.destination != own_name:
        raise AuthorizationError("request is addressed to another server")
    signed = request_json(method, uri, auth.origin, own_name, content)
    signed["signatures"] = {auth.origin: {auth.key_id: auth.signature}}
    if not verify_signature(signed, auth.origin, auth.key_id, public_key):
        raise AuthorizationError("X-Matrix signature does not verify")

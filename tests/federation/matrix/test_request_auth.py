"""X-Matrix request authentication (Server-Server API, "Request Authentication")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.matrix.request_auth import (
    AuthorizationError,
    authorization_header,
    parse_authorization,
    verify_request,
)
from federation.matrix.signed_json import SigningKey

KEY = SigningKey.from_seed(bytes(range(32)), "k1")


def test_round_trip_verifies() -> None:
    header = authorization_header(KEY, "a.test", "b.test", "PUT", "/_matrix/x?y=1",
                                  {"pdus": []})
    auth = parse_authorization(header)
    assert (auth.origin, auth.destination, auth.key_id) == ("a.test", "b.test", "ed25519:k1")
    verify_request(auth, KEY.public_key_base64, method="PUT", uri="/_matrix/x?y=1",
                   own_name="b.test", content={"pdus": []})


@pytest.mark.parametrize("change", [
    {"method": "GET"}, {"uri": "/_matrix/x?y=2"}, {"own_name": "c.test"},
    {"content": {"pdus": [1]}}, {"content": None}])
def test_any_changed_part_fails(change: dict[str, object]) -> None:
    header = authorization_header(KEY, "a.test", "b.test", "PUT", "/_matrix/x?y=1",
                                  {"pdus": []})
    request = {"method": "PUT", "uri": "/_matrix/x?y=1", "own_name": "b.test",
               "content": {"pdus": []}} | change
    with pytest.raises(AuthorizationError):
        verify_request(parse_authorization(header), KEY.public_key_base64, **request)


def test_older_servers_forms_are_accepted() -> None:
    """Unquoted values with colons, spaces around commas, upper-case names, no destination
    (servers before v1.3 sent none)."""
    auth = parse_authorization(
        'X-Matrix origin=a.test , KEY=ed25519:k1,sig="abc\\"d"')
    assert auth.origin == "a.test" and auth.key_id == "ed25519:k1"
    assert auth.signature == 'abc"d' and auth.destination is None


@pytest.mark.parametrize("header", [
    "Bearer abc", "X-Matrix", 'X-Matrix origin="a"', 'X-Matrix origin="a",key="rsa:1",sig="x"',
    'X-Matrix origin="a" key="ed25519:1" sig="x"',
    'X-Matrix origin="a",origin="b",key="ed25519:1",sig="x"',
    "X-Matrix " + "a" * 3000])
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(AuthorizationError):
        parse_authorization(header)


@given(st.text(max_size=300))
def test_parser_never_crashes(text: str) -> None:
    try:
        parse_authorization(text)
    except AuthorizationError:
        pass


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
       st.text(alphabet="abcdefghijklmnop.-:0123456789", min_size=1, max_size=40))
def test_any_origin_round_trips(origin: str, destination: str) -> None:
    auth = parse_authorization(authorization_header(KEY, origin, destination, "GET", "/"))
    assert auth.origin == origin and auth.destination == destination

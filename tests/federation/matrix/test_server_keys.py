"""Server key responses: what we publish parses back, and what another server sends is
checked (name, self-signatures, validity capped at a week)."""

from __future__ import annotations

import pytest

from federation.matrix.server_keys import (
    MAX_VALIDITY_MS,
    InvalidServerKeys,
    parse_server_keys,
    publish_keys,
)
from federation.matrix.signed_json import SigningKey

KEY = SigningKey.from_seed(bytes(range(32)), "k1")
NOW = 1_800_000_000_000


def test_published_keys_parse_back() -> None:
    body = publish_keys(KEY, "a.test", NOW, 3600_000)
    [key] = parse_server_keys(body, "a.test", NOW)
    assert (key.key_id, key.public_key, key.valid_until_ts) == (
        KEY.key_id, KEY.public_key_base64, NOW + 3600_000)


def test_validity_is_capped_at_a_week() -> None:
    body = publish_keys(KEY, "a.test", NOW, 365 * 24 * 3600_000)
    [key] = parse_server_keys(body, "a.test", NOW)
    assert key.valid_until_ts == NOW + MAX_VALIDITY_MS


def test_other_server_name_is_refused() -> None:
    with pytest.raises(InvalidServerKeys):
        parse_server_keys(publish_keys(KEY, "a.test", NOW, 1000), "b.test", NOW)


def test_forged_key_is_refused() -> None:
    """Another key put into verify_keys after signing: not signed by that key."""
    body = publish_keys(KEY, "a.test", NOW, 1000)
    other = SigningKey.from_seed(bytes(32), "k2")
    body["verify_keys"][other.key_id] = {"key": other.public_key_base64}
    with pytest.raises(InvalidServerKeys):
        parse_server_keys(body, "a.test", NOW)


def test_unsigned_or_malformed_bodies_are_refused() -> None:
    body = publish_keys(KEY, "a.test", NOW, 1000)
    del body["signatures"]
    for bad in (body, None, [], {"server_name": "a.test"},
                {"server_name": "a.test", "valid_until_ts": NOW, "verify_keys": {}},
                {"server_name": "a.test", "valid_until_ts": True,
                 "verify_keys": {KEY.key_id: {"key": KEY.public_key_base64}}}):
        with pytest.raises(InvalidServerKeys):
            parse_server_keys(bad, "a.test", NOW)

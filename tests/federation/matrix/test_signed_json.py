"""Signing JSON: the spec's own test vectors (Appendices, "Signing JSON" examples),
and that a signature breaks on any change of the signed content."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from federation.matrix.signed_json import (
    SigningKey,
    key_id_for,
    unpadded_base64,
    verify_signature,
    verify_signed_bytes,
)

SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"


def spec_key() -> SigningKey:
    # The spec's seed is not in canonical base64 (its last character carries stray
    # bits), so it is decoded leniently here, as the spec's own examples do.
    return SigningKey.from_seed(base64.b64decode(SPEC_SEED + "="), "1")


def test_spec_vector_empty_object() -> None:
    signed = spec_key().sign_json({}, "domain")
    assert signed == {"signatures": {"domain": {"ed25519:1": (
        "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ")}}}


def test_spec_vector_object_with_data() -> None:
    signed = spec_key().sign_json({"one": 1, "two": "Two"}, "domain")
    assert signed["signatures"]["domain"]["ed25519:1"] == (
        "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw")


def test_signing_keeps_other_signatures_and_ignores_unsigned() -> None:
    key = spec_key()
    signed = key.sign_json({"a": 1, "unsigned": {"age": 5},
                            "signatures": {"other": {"ed25519:x": "abc"}}}, "domain")
    assert signed["signatures"]["other"] == {"ed25519:x": "abc"}
    signed["unsigned"] = {"age": 99}  # unsigned may change on the way
    assert verify_signature(signed, "domain", "ed25519:1", key.public_key_base64)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(
    lambda k: k not in ("signatures", "unsigned")), json_values, min_size=1, max_size=5),
    st.data())
def test_any_change_breaks_the_signature(obj: dict[str, object], data: st.DataObject) -> None:
    key = spec_key()
    signed = key.sign_json(obj, "school.test")
    assert verify_signature(signed, "school.test", "ed25519:1", key.public_key_base64)
    assert not verify_signature(signed, "other.test", "ed25519:1", key.public_key_base64)
    victim = data.draw(st.sampled_from(sorted(obj)))
    changed = dict(signed)
    changed[victim] = [obj[victim]]  # a different value for one member
    assert not verify_signature(changed, "school.test", "ed25519:1", key.public_key_base64)


def test_key_id_is_stable_and_a_valid_identifier() -> None:
    key = spec_key().private_key.public_key()
    assert key_id_for(key) == key_id_for(key)
    version = key_id_for(key).removeprefix("ed25519:")
    assert version.isalnum() and version.isascii()


def test_a_small_order_key_verifies_nothing() -> None:
    """The identity point as a public key with the signature (identity, 0) passes a
    cofactorless check for *every* message (OpenSSL accepts it); libsodium, as
    Synapse uses it, refuses such keys: no key may vouch for anything at all."""
    identity = b"\x01" + b"\x00" * 31
    forged = unpadded_base64(identity + b"\x00" * 32)
    for payload in (b"{}", b'{"any":"thing"}'):
        assert not verify_signed_bytes(payload, forged, unpadded_base64(identity))


def test_signatures_and_keys_of_the_wrong_length_fail() -> None:
    key = SigningKey.from_seed(b"\x05" * 32, "k")
    payload = b'{"a":1}'
    good = key.sign_bytes(payload)
    assert verify_signed_bytes(payload, good, key.public_key_base64)
    raw = base64.b64decode(good + "==")
    assert not verify_signed_bytes(payload, unpadded_base64(raw[:-1]), key.public_key_base64)
    assert not verify_signed_bytes(payload, good, key.public_key_base64[:-2])
    assert not verify_signed_bytes(payload, "nicht base64!", key.public_key_base64)
    assert not verify_signed_bytes(b'{"a":2}', good, key.public_key_base64)

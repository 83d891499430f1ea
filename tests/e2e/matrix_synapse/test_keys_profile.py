"""Synapse and a Schulhof school without rooms: each fetches and checks the other's
server key, signed requests (X-Matrix) pass both ways, profiles are read both ways,
and a school that does not list the Synapse server refuses it (issue 13)."""

from __future__ import annotations

import logging
import urllib.parse

import pytest

from federation.matrix.client import DestinationRefused
from federation.matrix.keyring import KeyRing
from federation.matrix.server_keys import parse_server_keys
from tests.e2e.matrix_synapse.conftest import (
    ON_SHARED_LOOP,
    SYNAPSE_NAME,
    SYNAPSE_TEST_TIMEOUT,
    Interop,
)

pytestmark = [pytest.mark.synapse, pytest.mark.timeout(SYNAPSE_TEST_TIMEOUT), ON_SHARED_LOOP]


async def test_schulhof_fetches_and_checks_synapse_key(interop: Interop) -> None:
    """A fetches Synapse's key and checks its self-signature.  A's own key ring may
    already hold the key (an earlier test), so a new, empty one
    around A's federation client does the fetch."""
    a = interop.schools["a"]
    key = interop.synapse.signing_key
    public = await KeyRing(a.listener.client).verify_key(SYNAPSE_NAME, key.key_id)
    assert public == key.public_key_base64


async def test_schulhof_reads_synapse_profile_with_signed_request(interop: Interop) -> None:
    """A's X-Matrix request is checked by Synapse, which fetches A's key for it; Synapse's
    key notary endpoint then shows it holds A's key (signed by A, vouched by Synapse)."""
    user = await interop.synapse_user("anna", "Anna Synapse")
    a = interop.schools["a"]
    answer = await a.listener.client.request(
        "GET", SYNAPSE_NAME, "/_matrix/federation/v1/query/profile",
        query={"user_id": user.user_id})
    assert answer.get("displayname") == "Anna Synapse"
    vouched = await a.listener.client.request(
        "GET", SYNAPSE_NAME, "/_matrix/key/v2/query/a.test", signed=False)
    [body] = [k for k in vouched["server_keys"] if k["server_name"] == "a.test"]
    [key] = parse_server_keys(body, "a.test", 0)
    assert key.public_key == a.listener.context.signing_key.public_key_base64
    assert SYNAPSE_NAME in body["signatures"]


async def test_synapse_reads_schulhof_profile(interop: Interop) -> None:
    """Synapse's user asks their server for a Schulhof user's profile: Synapse signs
    the federation request, A checks it with the key it fetches from Synapse."""
    user = await interop.synapse_user("bert", "Bert Synapse")
    status, body = await interop.synapse.client(
        user, "GET", "/_matrix/client/v3/profile/" + urllib.parse.quote(interop.teacher_id()))
    assert (status, body.get("displayname")) == (200, "Lehrer A")


async def test_school_that_does_not_list_synapse_refuses_it(
        interop: Interop, caplog: pytest.LogCaptureFixture) -> None:
    """C does not list syn.test: Synapse's request for a C profile is refused with
    403 (logged with the reason), and C's client will not send to Synapse."""
    user = await interop.synapse_user("carl", "Carl Synapse")
    with caplog.at_level(logging.INFO, logger="schulhof.messenger.federation"):
        status, body = await interop.synapse.client(
            user, "GET",
            "/_matrix/client/v3/profile/" + urllib.parse.quote(interop.teacher_id("c")))
    assert status != 200 and "displayname" not in body
    refusals = [r.getMessage() for r in caplog.records
                if "event=federation_refused" in r.getMessage()]
    assert any(f"origin={SYNAPSE_NAME}" in m and "status=403" in m for m in refusals), refusals
    with pytest.raises(DestinationRefused):
        await interop.schools["c"].listener.client.request(
            "GET", SYNAPSE_NAME, "/_matrix/federation/v1/version")

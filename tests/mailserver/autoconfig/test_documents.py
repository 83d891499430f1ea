"""Autoconfiguration documents: well-formed, and the request parser never crashes."""

from __future__ import annotations

import plistlib
from xml.etree import ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.autoconfig.documents import (
    MailEndpoints,
    apple_profile,
    requested_address,
    thunderbird_config,
)

ENDPOINTS = MailEndpoints("schule.test", "mail.schule.test", "Schule <&> Test",
                          imap_port=0)


def test_a_listener_that_is_off_is_left_out_and_names_are_escaped() -> None:
    root = ET.fromstring(thunderbird_config(ENDPOINTS))
    incoming = root.findall("emailProvider/incomingServer")
    assert [s.findtext("socketType") for s in incoming] == ["SSL"]
    assert root.findtext("emailProvider/displayName") == "Schule <&> Test"


def test_profile_is_a_property_list_with_stable_ids() -> None:
    first = plistlib.loads(apple_profile(ENDPOINTS, "anna@schule.test"))
    again = plistlib.loads(apple_profile(ENDPOINTS, "anna@schule.test"))
    other = plistlib.loads(apple_profile(ENDPOINTS, "ben@schule.test"))
    assert first["PayloadUUID"] == again["PayloadUUID"] != other["PayloadUUID"]
    assert first["PayloadContent"][0]["EmailAddress"] == "anna@schule.test"


@settings(deadline=None)  # the machine may be busy: no per-example deadline
@given(st.binary(max_size=400))
def test_any_request_body_gives_an_address_or_none(body: bytes) -> None:
    address = requested_address(body)
    assert address is None or address.count("@") == 1


@settings(deadline=None)  # the machine may be busy: no per-example deadline
@given(st.emails())
def test_addresses_are_read_from_requests(address: str) -> None:
    body = (f"<Autodiscover><Request><EMailAddress>{address}</EMailAddress></Request>"
            "</Autodiscover>").encode()
    assert requested_address(body) in (address, None)

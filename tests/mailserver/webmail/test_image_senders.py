"""The address a "Bilder von ... immer anzeigen" choice is remembered under."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailserver.webmail.image_senders import sender_address


def test_the_from_address_case_folded() -> None:
    assert sender_address("Förderverein <Info@Foerderverein.Example>") == \
        "info@foerderverein.example"
    assert sender_address("info@x.example") == "info@x.example"
    assert sender_address("Nur ein Name") == ""
    assert sender_address("") == ""
    assert sender_address("a@" + "x" * 400) == ""


@given(st.text(max_size=500))
def test_any_from_header_gives_an_address_or_nothing(header: str) -> None:
    address = sender_address(header)
    assert address == "" or ("@" in address and address == address.casefold()
                             and len(address) <= 320 and address.isprintable())

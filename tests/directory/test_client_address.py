"""Which address a request came from behind a trusted reverse proxy."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from directory.client_address import TrustedProxies

PROXIES = TrustedProxies.parse(["127.0.0.1", "10.0.0.0/8", "::1"])


@pytest.mark.parametrize(("peer", "header", "client"), [
    ("127.0.0.1", ["203.0.113.7"], "203.0.113.7"),
    ("127.0.0.1", ["1.2.3.4, 203.0.113.7"], "203.0.113.7"),  # left entry: the client's claim
    ("127.0.0.1", ["203.0.113.7, 10.0.0.5"], "203.0.113.7"),  # through a second proxy
    ("127.0.0.1", ["203.0.113.7", "10.0.0.5"], "203.0.113.7"),  # two header lines
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["10.1.1.1"], "10.1.1.1"),  # a client inside the proxy network
    ("127.0.0.1", ["not-an-ip"], "127.0.0.1"),
    ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),  # not from a proxy: the header is ignored
    ("::ffff:127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
    ("::1", ["2001:db8::1"], "2001:db8::1"),
])
def test_client_address(peer: str, header: list[str], client: str) -> None:
    assert PROXIES.client_address(peer, header) == client


def test_no_proxies_configured_means_the_peer() -> None:
    assert TrustedProxies().client_address("127.0.0.1", ["1.2.3.4"]) == "127.0.0.1"


def test_bad_settings_fail() -> None:
    with pytest.raises(ValueError):
        TrustedProxies.parse(["localhost"])


_public = st.ip_addresses(v=4).filter(
    lambda ip: not PROXIES.trusts(str(ip))).map(str)
_anything = st.one_of(st.ip_addresses().map(str), st.text(max_size=12))


@given(st.lists(_anything, max_size=4), _public,
       st.lists(st.sampled_from(["10.0.0.1", "10.9.9.9", "127.0.0.1"]), max_size=3))
def test_forged_entries_left_of_the_proxy_chain_never_win(forged: list[str], client: str,
                                                          proxies: list[str]) -> None:
    header = ", ".join([*forged, client, *proxies]).replace("\n", "")
    assert PROXIES.client_address("127.0.0.1", [header]) == client


@given(_public, st.lists(_anything, max_size=4))
def test_an_untrusted_peer_is_the_client_whatever_it_sends(peer: str,
                                                          header: list[str]) -> None:
    assert PROXIES.client_address(peer, header) == peer


@given(st.lists(_anything, max_size=5))
def test_the_answer_is_the_peer_or_a_valid_hop(header: list[str]) -> None:
    found = PROXIES.client_address("127.0.0.1", header)
    assert found == "127.0.0.1" or ipaddress.ip_address(found)

"""SPF record grammar and macros (RFC 7208 7.4 examples + hypothesis properties)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.spf_record import (
    MacroContext,
    Mechanism,
    SpfSyntaxError,
    expand,
    is_spf_record,
    parse_record,
)

V4 = MacroContext("strong-bad@email.example.com", "email.example.com",
                  ipaddress.ip_address("192.0.2.3"), "mx.example.org")
V6 = MacroContext("strong-bad@email.example.com", "email.example.com",
                  ipaddress.ip_address("2001:db8::cb01"), "mx.example.org")


@pytest.mark.parametrize(("spec", "expected"), [
    ("%{s}", "strong-bad@email.example.com"),
    ("%{o}", "email.example.com"),
    ("%{d}", "email.example.com"),
    ("%{d4}", "email.example.com"),
    ("%{d3}", "email.example.com"),
    ("%{d2}", "example.com"),
    ("%{d1}", "com"),
    ("%{dr}", "com.example.email"),
    ("%{d2r}", "example.email"),
    ("%{l}", "strong-bad"),
    ("%{l-}", "strong.bad"),
    ("%{lr}", "strong-bad"),
    ("%{lr-}", "bad.strong"),
    ("%{l1r-}", "strong"),
    ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
    ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
    ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
    ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
    ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ("%%%_%-", "% %20"),
    ("%{S}", "strong-bad%40email.example.com"),
])
def test_rfc7208_section_7_4_examples(spec: str, expected: str) -> None:
    assert expand(spec, V4) == expected


def test_rfc7208_section_7_4_ipv6_example() -> None:
    assert expand("%{ir}.%{v}._spf.%{d2}", V6) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com")


@pytest.mark.parametrize("bad", ["%{x}", "%{d0}", "%", "%{d", "%{c}", "a b"])
def test_bad_macros(bad: str) -> None:
    with pytest.raises(SpfSyntaxError):
        expand(bad, V4)


def test_record_detection() -> None:
    assert is_spf_record("v=spf1")
    assert is_spf_record("V=SPF1 -all")
    assert not is_spf_record("v=spf10 -all")
    assert not is_spf_record("v=spf1-all")


def test_parse_terms() -> None:
    record = parse_record("v=spf1 a/24//64 mx:example.org -ip4:192.0.2.0/24 "
                          "~ip6:2001:db8::/32 ?include:_spf.example.net ptr exists:%{i}.x.test "
                          "redirect=_spf.example.com exp=explain.%{d} ext=whatever -all")
    names = [(m.qualifier, m.name) for m in record.mechanisms]
    assert names == [("+", "a"), ("+", "mx"), ("-", "ip4"), ("~", "ip6"), ("?", "include"),
                     ("+", "ptr"), ("+", "exists"), ("-", "all")]
    a, mx, ip4 = record.mechanisms[:3]
    assert (a.domain_spec, a.cidr4, a.cidr6) == (None, 24, 64)
    assert (mx.domain_spec, mx.cidr4) == ("example.org", 32)
    assert ip4.network == ipaddress.ip_network("192.0.2.0/24")
    assert record.redirect == "_spf.example.com" and record.exp == "explain.%{d}"


@pytest.mark.parametrize("bad", [
    "v=spf1 ip4:192.0.2.0/33", "v=spf1 ip6:2001:db8::/129", "v=spf1 a/01",
    "v=spf1 include", "v=spf1 all:x", "v=spf1 mx:example.123", "v=spf1 frob",
    "v=spf1 exp=a.test exp=b.test", "v=spf1 a:", "v=spf1 ip4:2001:db8::1",
])
def test_parse_errors(bad: str) -> None:
    with pytest.raises(SpfSyntaxError):
        parse_record(bad)


def render(m: Mechanism) -> str:
    out = ("" if m.qualifier == "+" else m.qualifier) + m.name
    if m.name in ("ip4", "ip6"):
        return f"{out}:{m.network}"
    if m.domain_spec is not None:
        out += ":" + m.domain_spec
    if m.name in ("a", "mx"):
        out += (f"/{m.cidr4}" if m.cidr4 != 32 else "") + (
            f"//{m.cidr6}" if m.cidr6 != 128 else "")
    return out


labels = st.from_regex(r"[a-z][a-z0-9\-]{0,10}[a-z0-9]", fullmatch=True)
domains = st.builds(lambda ls, top: ".".join([*ls, top]), st.lists(labels, min_size=1,
                    max_size=3), st.from_regex(r"[a-z]{2,6}", fullmatch=True))
qualifiers = st.sampled_from(["+", "-", "~", "?"])
mechanisms = st.one_of(
    st.builds(Mechanism, qualifiers, st.just("all")),
    st.builds(lambda q, n, d: Mechanism(q, n, d), qualifiers,
              st.sampled_from(["include", "exists"]), domains),
    st.builds(lambda q, n, d, c4, c6: Mechanism(q, n, d, cidr4=c4, cidr6=c6), qualifiers,
              st.sampled_from(["a", "mx"]), st.none() | domains, st.integers(0, 32),
              st.integers(0, 128)),
    st.builds(lambda q, net: Mechanism(q, "ip4", network=net), qualifiers,
              st.ip_addresses(v=4).flatmap(lambda ip: st.integers(0, 32).map(
                  lambda n: ipaddress.ip_network(f"{ip}/{n}", strict=False)))),
    st.builds(lambda q, net: Mechanism(q, "ip6", network=net), qualifiers,
              st.ip_addresses(v=6).flatmap(lambda ip: st.integers(0, 128).map(
                  lambda n: ipaddress.ip_network(f"{ip}/{n}", strict=False)))),
)


@given(st.lists(mechanisms, max_size=8))
def test_render_parse_round_trip(ms: list[Mechanism]) -> None:
    text = "v=spf1 " + " ".join(render(m) for m in ms)
    assert parse_record(text).mechanisms == tuple(ms)


@given(st.text(max_size=300))
def test_parse_never_crashes(text: str) -> None:
    try:
        parse_record("v=spf1 " + text)
    except SpfSyntaxError:
        pass


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=80))
def test_expand_never_crashes(spec: str) -> None:
    try:
        out = expand(spec, V6)
    except SpfSyntaxError:
        return
    assert "%{" not in out or "%{" in spec.replace("%%", "")

"""Authentication-Results: building ours, removing forged claims (RFC 8601)."""

from __future__ import annotations

import authres
import authres.core
import authres.dmarc
from hypothesis import given
from hypothesis import strategies as st

from federation.authresults import (
    _clean,
    _fold,
    authserv_id,
    build_header,
    remove_claims,
    split_header,
)
from federation.dkim import DkimResult
from federation.dmarc import DmarcVerdict
from federation.spf import SpfResult

BODY = b"\r\nHallo,\r\nAuthentication-Results: mail.schule.test; spf=pass\r\n"
HEADERS = [b"From: a@partner.test\r\n", b"To: b@schule.test\r\n", b"Subject: x\r\n"]


def test_build_header_parses_back() -> None:
    header = build_header(
        "mail.schule.test", SpfResult("pass", "partner.test", "mailfrom", "a@partner.test"),
        [DkimResult("pass", "partner.test", "rsa-0011aabb", "rsa-sha256", "", "AbCd+/12"),
         DkimResult("fail", "partner.test", "ed-0011aabb", "ed25519-sha256",
                    "body hash mismatch")],
        DmarcVerdict("pass", "partner.test", "reject"))
    assert header.startswith(b"Authentication-Results: mail.schule.test;")
    assert header.endswith(b"\r\n") and b"\n" not in header.replace(b"\r\n", b"")
    unfolded = header.decode().replace("\r\n", "")
    parsed = authres.AuthenticationResultsHeader.parse(unfolded)
    assert parsed.authserv_id == "mail.schule.test"
    methods = [(r.method, r.result) for r in parsed.results]
    assert methods == [("dkim", "pass"), ("dkim", "fail"), ("spf", "pass"), ("dmarc", "pass")]
    assert parsed.results[0].header_d == "partner.test"
    assert parsed.results[2].smtp_mailfrom == "a@partner.test"
    assert [(p.type, p.name, p.value) for p in parsed.results[3].properties] == [
        ("header", "from", "partner.test"), ("policy", "dmarc", "reject")]


def test_header_without_dkim_says_none_and_helo_identity() -> None:
    header = build_header("mx.schule.test",
                          SpfResult("none", "h.partner.test", "helo", "postmaster@h.x"), [],
                          DmarcVerdict("none", "partner.test")).decode()
    assert "dkim=none" in header and "smtp.helo=h.partner.test" in header
    assert "policy.dmarc" not in header


def test_control_characters_never_reach_the_header() -> None:
    header = build_header("mail.schule.test",
                          SpfResult("pass", "x.test", "mailfrom", "a\r\nX-Evil: 1@x.test"),
                          [], None)
    assert b"\r\nX-Evil" not in header


def test_undecodable_bytes_never_break_the_header() -> None:
    """A sender with bytes that were not UTF-8 (surrogateescape upstream): the
    header is still built (the fuzzer found this raising UnicodeEncodeError)."""
    sender = b"caf\xe9@x.test".decode("utf-8", "surrogateescape")
    header = build_header("mail.schule.test", SpfResult("pass", "x.test", "mailfrom", sender),
                          [DkimResult("fail", "x.test\udce9", "s", "rsa-sha256")], None)
    assert header.startswith(b"Authentication-Results: ") and b"smtp.mailfrom=caf@x.test" in header


def test_authserv_id_forms() -> None:
    assert authserv_id(" mail.schule.test; spf=pass") == "mail.schule.test"
    assert authserv_id(" (comment (nested)) MAIL.Schule.test 1; none") == "mail.schule.test"
    assert authserv_id(' "mail.schule.test"; none') == "mail.schule.test"
    assert authserv_id("\r\n\tmail.schule.test;\r\n\tspf=pass") == "mail.schule.test"
    assert authserv_id("  ") is None
    assert authserv_id(' "unterminated') is None


def test_remove_claims_keeps_everything_else() -> None:
    ours = b"Authentication-Results: mail.schule.test;\r\n\tdkim=pass header.d=schule.test\r\n"
    quoted = b'Authentication-Results: (x) "MAIL.SCHULE.TEST"; spf=pass\r\n'
    theirs = b"Authentication-Results: mx.partner.test; spf=pass\r\n"
    message = HEADERS[0] + ours + HEADERS[1] + theirs + quoted + HEADERS[2] + BODY
    cleaned = remove_claims(message, "mail.schule.test")
    assert cleaned == HEADERS[0] + HEADERS[1] + theirs + HEADERS[2] + BODY


fields = st.lists(st.sampled_from([
    *HEADERS, b"Received: from x\r\n\tby y\r\n", b"X-Empty:\r\n",
    b"Authentication-Results: other.test; none\r\n"]), max_size=6)


@given(fields, st.lists(st.tuples(st.integers(0, 6), st.sampled_from([
    b"Authentication-Results: mail.schule.test; spf=pass\r\n",
    b"authentication-results :(c)mail.schule.test;\r\n dkim=pass\r\n",
    b'Authentication-Results: "mail.schule.test"; none\r\n'])), max_size=3))
def test_remove_claims_round_trip(original: list[bytes],
                                  forged: list[tuple[int, bytes]]) -> None:
    """Inserting forged claims anywhere and removing them gives the original back."""
    mixed = list(original)
    for position, field in forged:
        mixed.insert(min(position, len(mixed)), field)
    assert remove_claims(b"".join(mixed) + BODY, "mail.schule.test") == \
        b"".join(original) + BODY


@given(st.binary(max_size=400))
def test_split_and_remove_never_crash_and_keep_bytes(data: bytes) -> None:
    fields_, rest = split_header(data)
    assert b"".join(fields_) + rest == data
    cleaned = remove_claims(data, "mail.schule.test")
    assert len(cleaned) <= len(data)


@given(st.text(max_size=100))
def test_authserv_id_never_crashes(value: str) -> None:
    result = authserv_id(value)
    assert result is None or result == result.lower()


def authres_header(authserv: str, spf: SpfResult | None, dkim: list[DkimResult],
                   dmarc: DmarcVerdict | None) -> bytes:
    """The header as authres builds it (how build_header built it before)."""
    results: list[authres.core.BaseAuthenticationResult] = []
    if not dkim:
        results.append(authres.DKIMAuthenticationResult(result="none"))
    for r in dkim:
        prefix = _clean(r.signature_prefix)
        results.append(authres.DKIMAuthenticationResult(
            result=r.result, reason=_clean(r.reason) or None,
            properties=[authres.core.AuthenticationResultProperty("header", "b", prefix)]
            if prefix else None,
            header_d=_clean(r.domain) or None, header_s=_clean(r.selector) or None,
            header_a=_clean(r.algorithm) or None))
    if spf is not None:
        kwargs = ({"smtp_mailfrom": _clean(spf.sender)} if spf.identity == "mailfrom"
                  else {"smtp_helo": _clean(spf.domain)})
        results.append(authres.SPFAuthenticationResult(result=spf.result, **kwargs))
    if dmarc is not None:
        results.append(authres.dmarc.DMARCAuthenticationResult(
            result=dmarc.result, header_from=_clean(dmarc.from_domain) or None,
            policy=dmarc.policy if dmarc.result in ("pass", "fail") else None))
    header = authres.AuthenticationResultsHeader(authserv_id=_clean(authserv),
                                                 results=results)
    return _fold(str(header)).encode("utf-8") + b"\r\n"


_results = st.sampled_from(["pass", "fail", "none", "neutral", "temperror", "permerror",
                            "softfail", "policy"])
_values = st.one_of(st.sampled_from(["", "partner.test", "a@partner.test", "rsa-sha256",
                                     "Ab+/=12x", 'x "y" \\z', "body hash mismatch"]),
                    st.text(max_size=30))
_dkim = st.builds(DkimResult, _results, _values, _values, _values, _values, _values)
_spf = st.one_of(st.none(), st.builds(SpfResult, _results, _values,
                                      st.sampled_from(["mailfrom", "helo"]), _values))
_dmarc = st.one_of(st.none(), st.builds(DmarcVerdict, _results, _values,
                                        st.sampled_from(["none", "quarantine", "reject", ""])))


@given(st.sampled_from(["mx.schule.test", "b.test"]), _spf, st.lists(_dkim, max_size=3),
       _dmarc)
def test_build_header_writes_what_authres_writes(authserv: str, spf: SpfResult | None,
                                                 dkim: list[DkimResult],
                                                 dmarc: DmarcVerdict | None) -> None:
    assert build_header(authserv, spf, dkim, dmarc) == authres_header(authserv, spf, dkim,
                                                                       dmarc)

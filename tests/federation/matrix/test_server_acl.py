"""Server ACLs (``m.room.server_acl``): the glob matcher agrees with a reference
glob (Python's fnmatch without character classes), the spec's example ACL judges
as the spec says, ports never matter, deny wins over allow, and no content crashes
the parser."""

from __future__ import annotations

import fnmatch

from hypothesis import given
from hypothesis import strategies as st

from federation.matrix.server_acl import ServerAcl, glob_matches, host_of, is_ip_literal

GLOBS = st.text(alphabet="abAB.-*?", max_size=12)
NAMES = st.text(alphabet="abAB.-", max_size=12)
HOSTS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}\.){0,3}[a-z]{1,5}", fullmatch=True)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


@given(GLOBS, NAMES)
def test_glob_matches_like_a_reference_glob(glob: str, name: str) -> None:
    assert glob_matches(glob, name) == fnmatch.fnmatchcase(name.lower(), glob.lower())


@given(NAMES)
def test_star_matches_everything_and_a_name_itself(name: str) -> None:
    assert glob_matches("*", name)
    assert glob_matches(name, name.upper())
    assert glob_matches("?" * len(name), name)
    assert not glob_matches("?" * (len(name) + 1), name)


def test_the_spec_example() -> None:
    acl = ServerAcl.from_content({"allow": ["*"], "deny": ["*.evil.com", "evil.com"],
                                  "allow_ip_literals": False})
    assert not acl.allows("evil.com")
    assert not acl.allows("matrix.evil.com:8448")
    assert not acl.allows("EVIL.com")
    assert acl.allows("notevil.com")
    assert acl.allows("good.example:8448")
    assert not acl.allows("1.2.3.4")
    assert not acl.allows("[::1]:8448")
    with_literals = ServerAcl.from_content({"allow": ["*"]})
    assert with_literals.allows("1.2.3.4:8448") and with_literals.allows("[2001:db8::1]")


def test_missing_allow_allows_nobody_and_odd_values_are_ignored() -> None:
    assert not ServerAcl.from_content({}).allows("a.test")
    odd = ServerAcl.from_content({"allow": ["a.test", 5, None, ["b.test"]], "deny": "a.test",
                                  "allow_ip_literals": "no"})
    assert odd.allows("a.test") and not odd.allows("b.test")
    assert odd.allow_ip_literals  # not a boolean: the default


@given(HOSTS, st.integers(min_value=1, max_value=65535), st.lists(GLOBS, max_size=4),
       st.lists(GLOBS, max_size=4), st.booleans())
def test_ports_never_matter(host: str, port: int, allow: list[str], deny: list[str],
                            literals: bool) -> None:
    acl = ServerAcl(tuple(allow), tuple(deny), literals)
    assert acl.allows(host) == acl.allows(f"{host}:{port}")
    assert host_of(f"{host}:{port}") == host


@given(HOSTS, st.lists(GLOBS, max_size=4))
def test_deny_wins(host: str, allow: list[str]) -> None:
    acl = ServerAcl((*allow, host), (host.upper(),))
    assert not acl.allows(host)


@given(st.lists(HOSTS, min_size=1, max_size=5), HOSTS)
def test_only_lets_exactly_the_given_servers_in(servers: list[str], other: str) -> None:
    acl = ServerAcl.only(f"{s}:8448" for s in servers)
    assert all(acl.allows(s) for s in servers)
    assert acl.allows(other) == (other in servers)
    assert not acl.allows("127.0.0.1")
    assert ServerAcl.from_content(acl.content()) == acl


@given(st.dictionaries(st.sampled_from(["allow", "deny", "allow_ip_literals", "x"]), JSON),
       st.text(max_size=30))
def test_any_content_and_name_is_judged_without_crashing(content: dict[str, object],
                                                          name: str) -> None:
    assert isinstance(ServerAcl.from_content(content).allows(name), bool)


def test_ip_literals() -> None:
    assert is_ip_literal("10.0.0.1") and is_ip_literal("[::1]")
    assert not is_ip_literal("a.test") and not is_ip_literal("[a.test]")

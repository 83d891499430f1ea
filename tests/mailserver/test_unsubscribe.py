"""The digests' signed unsubscribe links (RFC 8058): only the server makes them, each
names one account, and the secret is made once and then kept."""

from __future__ import annotations

import os
import stat
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.unsubscribe import PATH, SECRET_BYTES, UnsubscribeLinks, load_secret
from tests.support.properties import examples

LINKS = UnsubscribeLinks(b"k" * SECRET_BYTES, "https://mail.schule.test:8443/")


def query(url: str) -> dict[str, str]:
    parts = urllib.parse.urlsplit(url)
    assert parts.path == PATH and url.startswith("https://mail.schule.test:8443/")
    return dict(urllib.parse.parse_qsl(parts.query))


@settings(max_examples=examples(200))
@given(account=st.integers(1, 10**15), other=st.integers(1, 10**15),
       junk=st.text(max_size=40))
def test_a_link_opens_for_its_own_account_only(account: int, other: int, junk: str) -> None:
    values = query(LINKS.url(account))
    assert LINKS.account_of(values["a"], values["t"]) == account
    if other != account:
        assert LINKS.account_of(str(other), values["t"]) is None
    assert LINKS.account_of(values["a"], junk) is None or junk == values["t"]
    assert LINKS.account_of("0" + values["a"], values["t"]) is None  # one spelling only
    assert LINKS.account_of(junk, values["t"]) is None or junk == values["a"]


@given(account=st.integers(1, 10**6), flip=st.integers(0, 21))
def test_a_changed_character_is_refused(account: int, flip: int) -> None:
    token = LINKS.token(account)
    changed = token[:flip] + ("A" if token[flip] != "A" else "B") + token[flip + 1:]
    assert LINKS.account_of(str(account), changed) is None
    other = UnsubscribeLinks(b"x" * SECRET_BYTES, "https://mail.schule.test")
    assert other.account_of(str(account), token) is None  # another school's secret


def test_the_secret_is_made_once_private_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "data" / "unsubscribe.key"
    with ThreadPoolExecutor(8) as pool:  # workers starting at once
        secrets = list(pool.map(lambda _: load_secret(path), range(16)))
    assert len(set(secrets)) == 1 and len(secrets[0]) == SECRET_BYTES
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["unsubscribe.key"]
    assert load_secret(path) == secrets[0]
    path.write_bytes(b"short")
    with pytest.raises(ValueError):
        load_secret(path)

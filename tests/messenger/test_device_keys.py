"""messenger.device_keys: arbitrary uploads are refused cleanly, own keys accepted."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.device_keys import InvalidKeys, check_device_keys, check_one_time_keys
from tests.messenger.signed_json import SigningKey, device_keys

USER, DEVICE = "@anna:schule.test", "ANNA1"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                               max_size=4),
    max_leaves=20)


@given(json_values)
def test_any_device_keys_value_is_accepted_only_if_self_signed(value: Any) -> None:
    with pytest.raises(InvalidKeys):
        check_device_keys(value, USER, DEVICE)


@given(st.dictionaries(st.text(max_size=30), json_values, max_size=5))
def test_any_one_time_keys_value_is_checked_without_crashing(value: dict[str, Any]) -> None:
    try:
        check_one_time_keys(value, "one_time_keys", USER, DEVICE, SigningKey().public)
    except InvalidKeys:
        return
    assert all(not k.partition(":")[0].startswith("signed_") for k in value)


def test_own_self_signed_keys_pass_and_name_their_ed25519_key() -> None:
    key = SigningKey()
    assert check_device_keys(device_keys(USER, DEVICE, key), USER, DEVICE) == key.public
    with pytest.raises(InvalidKeys):
        check_device_keys(device_keys(USER, DEVICE, key), "@ben:schule.test", DEVICE)

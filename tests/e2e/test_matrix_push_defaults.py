"""The default push gateways: Element's and FluffyChat's apps can register their
pushers out of the box, other gateways cannot (matrix.push_gateways)."""

from __future__ import annotations

import aiohttp
import pytest

from conf.settings import MatrixSettings
from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import V3, client

base = test_matrix_api.base
http = test_matrix_api.http

ELEMENT = "https://matrix.org/_matrix/push/v1/notify"
FLUFFYCHAT = "https://push.fluffychat.im/_matrix/push/v1/notify"


def pusher(app_id: str, url: str, pushkey: str) -> dict[str, object]:
    return {"kind": "http", "app_id": app_id, "pushkey": pushkey, "app_display_name": app_id,
            "device_display_name": "Telefon", "lang": "de",
            "data": {"url": url, "format": "event_id_only"}}


def test_the_defaults_are_elements_and_fluffychats_gateways() -> None:
    assert set(MatrixSettings().push_gateways) == {ELEMENT, FLUFFYCHAT}


@pytest.mark.parametrize(("app_id", "url"), [
    ("im.vector.app.android", ELEMENT), ("io.element.elementx.ios.prod", ELEMENT),
    ("chat.fluffy.fluffychat", FLUFFYCHAT)])
async def test_the_apps_register_their_pushers(http: aiohttp.ClientSession, base: str,
                                               app_id: str, url: str) -> None:
    anna = await client(http, base, "anna")
    await anna.ok("POST", f"{V3}/pushers/set", pusher(app_id, url, "token-1"))
    listed = await anna.ok("GET", f"{V3}/pushers")
    assert [(p["app_id"], p["data"]["url"]) for p in listed["pushers"]] == [(app_id, url)]
    # Deleting it again (kind null): nothing is pushed anywhere from this test.
    await anna.ok("POST", f"{V3}/pushers/set", {**pusher(app_id, url, "token-1"), "kind": None})


@pytest.mark.parametrize("url", [
    "https://ntfy.sh/_matrix/push/v1/notify",  # UnifiedPush: only when the admin lists it
    "https://push.fluffychat.im/_matrix/push/v1/notify?x=1",
    "http://127.0.0.1:8008/_matrix/push/v1/notify"])
async def test_unlisted_gateways_are_refused(http: aiohttp.ClientSession, base: str,
                                             url: str) -> None:
    anna = await client(http, base, "anna")
    status, data = await anna.call("POST", f"{V3}/pushers/set",
                                   pusher("chat.fluffy.fluffychat", url, "token-2"))
    assert (status, data["errcode"]) == (400, "M_INVALID_PARAM")
    assert (await anna.ok("GET", f"{V3}/pushers"))["pushers"] == []

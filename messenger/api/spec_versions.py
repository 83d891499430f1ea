"""Which Client-Server API versions ``GET /versions`` advertises: exactly those whose
endpoints this server routes (spec: Client-Server API "API Standards", versioning;
the endpoint lists are from the spec's changelogs, r0.6.1 to v1.12).

Apps switch features on by version (matrix-js-sdk asks /v1/.../threads from
v1.4 on, clients use authenticated media from v1.11 on), so an advertised
version whose endpoints are missing breaks them.  ``advertised`` checks the
table against the application's router at startup; a test asks every listed
endpoint over HTTP and wants anything but M_UNRECOGNIZED.  Some endpoints
answer a clear refusal by the school's policy (``messenger.api.not_offered``);
the deprecated ``/events`` and ``/initialSync`` endpoints are not counted.
Later versions (v1.13: room reports are offered; the rest is not checked) are
not advertised.
"""

from __future__ import annotations

from aiohttp import web

V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"
ROOM = f"{V3}/rooms/{{room_id}}"
USER = f"{V3}/user/{{user_id}}"
RULE = f"{V3}/pushrules/{{scope}}/{{kind}}/{{rule_id}}"
V1_MEDIA = f"{V1}/media"

Endpoint = tuple[str, str]  # (method, path template as routed)
SPEC_VERSIONS = web.AppKey("messenger_spec_versions", list)


def _each(methods: str, path: str) -> list[Endpoint]:
    return [(m, path) for m in methods.split()]


CORE: list[Endpoint] = [
    ("GET", "/_matrix/client/versions"), ("GET", "/.well-known/matrix/client"),
    *_each("GET POST", f"{V3}/login"), ("POST", f"{V3}/logout"), ("POST", f"{V3}/logout/all"),
    ("POST", f"{V3}/register"), ("GET", f"{V3}/register/available"),
    ("GET", f"{V3}/account/whoami"), ("POST", f"{V3}/account/password"),
    ("POST", f"{V3}/account/deactivate"), ("GET", f"{V3}/account/3pid"),
    *[("POST", f"{V3}/account/3pid/{p}") for p in (
        "add", "bind", "delete", "unbind", "email/requestToken", "msisdn/requestToken")],
    ("GET", f"{V3}/capabilities"),
    ("POST", f"{USER}/filter"), ("GET", f"{USER}/filter/{{filter_id}}"),
    ("GET", f"{V3}/sync"),
    ("GET", f"{ROOM}/event/{{event_id}}"), ("GET", f"{ROOM}/state"),
    *_each("GET PUT", f"{ROOM}/state/{{event_type}}/{{state_key}}"),
    ("GET", f"{ROOM}/members"), ("GET", f"{ROOM}/joined_members"), ("GET", f"{ROOM}/messages"),
    ("PUT", f"{ROOM}/send/{{event_type}}/{{txn_id}}"),
    ("PUT", f"{ROOM}/redact/{{event_id}}/{{txn_id}}"),
    ("POST", f"{V3}/createRoom"), *_each("GET PUT DELETE", f"{V3}/directory/room/{{alias}}"),
    ("GET", f"{ROOM}/aliases"), ("GET", f"{V3}/joined_rooms"),
    *[("POST", f"{ROOM}/{a}") for a in ("invite", "join", "leave", "forget", "kick", "ban",
                                         "unban", "upgrade")],
    ("POST", f"{V3}/join/{{room_id_or_alias}}"), ("POST", f"{V3}/knock/{{room_id_or_alias}}"),
    *_each("GET PUT", f"{V3}/directory/list/room/{{room_id}}"),
    *_each("GET POST", f"{V3}/publicRooms"), ("POST", f"{V3}/user_directory/search"),
    ("GET", f"{V3}/profile/{{user_id}}"), *_each("GET PUT", f"{V3}/profile/{{user_id}}/{{field}}"),
    ("GET", f"{V3}/voip/turnServer"), ("PUT", f"{ROOM}/typing/{{user_id}}"),
    ("POST", f"{ROOM}/receipt/{{receipt_type}}/{{event_id}}"), ("POST", f"{ROOM}/read_markers"),
    *_each("GET PUT", f"{V3}/presence/{{user_id}}/status"),
    ("PUT", f"{V3}/sendToDevice/{{event_type}}/{{txn_id}}"),
    ("GET", f"{V3}/devices"), *_each("GET PUT DELETE", f"{V3}/devices/{{device_id}}"),
    ("POST", f"{V3}/delete_devices"),
    *[("POST", f"{V3}/keys/{k}") for k in ("upload", "query", "claim")],
    ("GET", f"{V3}/keys/changes"),
    ("GET", f"{V3}/pushers"), ("POST", f"{V3}/pushers/set"), ("GET", f"{V3}/notifications"),
    ("GET", f"{V3}/pushrules/"), *_each("GET PUT DELETE", RULE),
    *_each("GET PUT", f"{RULE}/{{attribute}}"),
    ("POST", f"{V3}/search"), ("GET", f"{ROOM}/context/{{event_id}}"),
    ("GET", f"{USER}/rooms/{{room_id}}/tags"),
    *_each("PUT DELETE", f"{USER}/rooms/{{room_id}}/tags/{{tag}}"),
    *_each("GET PUT", f"{USER}/account_data/{{type}}"),
    *_each("GET PUT", f"{USER}/rooms/{{room_id}}/account_data/{{type}}"),
    ("GET", f"{V3}/admin/whois/{{user_id}}"), ("POST", f"{ROOM}/report/{{event_id}}"),
    ("GET", f"{V3}/thirdparty/protocols"),
    *[("GET", f"{V3}/thirdparty/{k}/{{protocol}}") for k in ("protocol", "location", "user")],
    ("GET", f"{V3}/thirdparty/location"), ("GET", f"{V3}/thirdparty/user"),
    ("POST", f"{USER}/openid/request_token"),
    ("POST", "/_matrix/media/v3/upload"), ("GET", "/_matrix/media/v3/config"),
]

ADDED: list[tuple[str, list[Endpoint]]] = [
    ("r0.6.1", CORE),
    ("v1.1", [  # key backup, cross-signing
        ("POST", f"{V3}/room_keys/version"), ("GET", f"{V3}/room_keys/version"),
        *_each("GET PUT DELETE", f"{V3}/room_keys/version/{{version}}"),
        *_each("GET PUT DELETE", f"{V3}/room_keys/keys"),
        *_each("GET PUT DELETE", f"{V3}/room_keys/keys/{{room_id}}"),
        *_each("GET PUT DELETE", f"{V3}/room_keys/keys/{{room_id}}/{{session_id}}"),
        ("POST", f"{V3}/keys/device_signing/upload"), ("POST", f"{V3}/keys/signatures/upload")]),
    ("v1.2", [("GET", f"{V1}/rooms/{{room_id}}/hierarchy")]),
    ("v1.3", [("GET", f"{V1}/rooms/{{room_id}}/relations/{{event_id}}"),
              ("GET", f"{V1}/rooms/{{room_id}}/relations/{{event_id}}/{{rel_type}}"),
              ("GET", f"{V1}/rooms/{{room_id}}/relations/{{event_id}}/{{rel_type}}/"
                      "{event_type}")]),
    ("v1.4", [("GET", f"{V1}/rooms/{{room_id}}/threads")]),
    ("v1.5", []),
    ("v1.6", [("GET", f"{V1}/rooms/{{room_id}}/timestamp_to_event")]),
    ("v1.7", [("POST", "/_matrix/media/v1/create"),
              ("PUT", "/_matrix/media/v3/upload/{server_name}/{media_id}")]),
    ("v1.8", []), ("v1.9", []), ("v1.10", []),  # v1.10: /relations ?recurse
    ("v1.11", [("GET", f"{V1_MEDIA}/config"), ("GET", f"{V1_MEDIA}/preview_url"),
               ("GET", f"{V1_MEDIA}/download/{{server_name}}/{{media_id}}"),
               ("GET", f"{V1_MEDIA}/download/{{server_name}}/{{media_id}}/{{file_name}}"),
               ("GET", f"{V1_MEDIA}/thumbnail/{{server_name}}/{{media_id}}")]),
    ("v1.12", []),
]


def routed(app: web.Application) -> set[Endpoint]:
    return {(route.method, route.resource.canonical) for route in app.router.routes()
            if route.resource is not None}


def missing(app: web.Application) -> list[tuple[str, Endpoint]]:
    """(version, endpoint) for every listed endpoint the app does not route."""
    have = routed(app)
    return [(version, e) for version, endpoints in ADDED for e in endpoints if e not in have]


def advertised(app: web.Application) -> list[str]:
    """The versions up to the first one with a missing endpoint (a version includes
    every earlier one)."""
    have = routed(app)
    out = []
    for version, endpoints in ADDED:
        if any(e not in have for e in endpoints):
            break
        out.append(version)
    return out

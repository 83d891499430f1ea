"""Wiring of the Matrix client API service into a School (see conf.wiring).

Listens on ``listen.bind``:``listen.matrix`` (0 = a free port, -1 = off);
the Matrix server name is the school's domain, so user ids are
``@login:domain`` beside the mail address ``login@domain``.  Uploaded media
live under ``<data_dir>/media``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from prometheus_client import Counter

from conf.wiring.signing import event_key_lookup, event_signer, signing_key
from directory.client_address import TrustedProxies
from directory.model import Role
from federation.http_guard import HttpLimits
from federation.matrix.client import FederationClient, download_media
from federation.matrix.keyring import KeyRing
from federation.matrix.outbox import Outbox
from federation.matrix.received import ReceivedTransactions
from federation.matrix.sender import TransactionSender
from federation.metrics import SchoolMetrics
from messenger.api.federation import FederationContext, TransactionHandler
from messenger.chat_rights import ChatRights
from messenger.federation_edus import EduReceiver, EphemeralFederation
from messenger.federation_inbox import RoomsInbox, UnknownRoomsInbox
from messenger.federation_keys import LocalKeys, RemoteKeys
from messenger.federation_listener import FederationListener
from messenger.limits import MessengerLimits
from messenger.mail_bridge import MailToRoom
from messenger.quiet_hours import (
    QuietHours,
    QuietRules,
    QuietWindow,
    parse_role_windows,
)
from messenger.ratelimit import RateLimit, RateLimits
from messenger.remote_media import RemoteMedia
from messenger.rooms.federating import OutboxQueue, servers_sharing_rooms
from messenger.rooms.policy import ChatPolicy
from messenger.rooms.service import RoomService
from messenger.school_rooms import SchoolRooms
from messenger.server import MatrixServer
from messenger.sync.notifier import Notifier
from messenger.unread import UnreadCounts

if TYPE_CHECKING:
    from conf.app import School, Service
    from conf.settings import Settings


def build(school: School) -> list[Service]:
    settings = school.settings
    if settings.listen.matrix < 0:
        return []
    m = settings.matrix
    proxies = TrustedProxies.parse(settings.listen.trusted_proxies)
    server = MatrixServer(
        db=school.db, directory=school.directory, authenticator=school.authenticator,
        server_name=settings.school.domain.lower(), mail_domain=settings.school.domain.lower(),
        bind=settings.listen.bind, port=settings.listen.matrix,
        limits=MessengerLimits(max_upload_bytes=m.max_upload_mib * 1024 * 1024),
        media_dir=settings.data_dir / "media",
        # Group rooms are kept by one process of the school (serve's first worker).
        group_sync_interval=m.group_sync_interval_seconds if school.singletons else None,
        auto_join_groups=m.auto_join_group_rooms, push_gateways=m.push_gateways,
        trusted_proxies=proxies, http_limits=http_limits(school, proxies),
        rate_limits=rate_limits(m.send_messages_per_second, m.send_burst),
        event_signer=event_signer(school), chat_rights=chat_rights(settings),
        quiet_hours=quiet_hours(school), broadcast=school.broadcast)
    server.observer = RequestMetrics(school.metrics)
    # Mail to a group address appears in the group's room (issue 18, conf.wiring.bridge).
    school.mail_bridge.target = MailToRoom(
        school.db, server.school_rooms, server.rooms, media=server.media)
    services: list[Service] = [server]
    if settings.listen.federation >= 0:
        # The school's group rooms let only the servers it federates with in.
        server.school_rooms.federated_servers = settings.matrix_federation_servers
        listener = federation_listener(school, server)
        server.federate_keys(RemoteKeys(listener.client, server.server_name))
        federate_ephemeral(server, listener)
        if server.media is not None:
            client = listener.client
            server.media.remote = RemoteMedia(
                school.db, server.media.root,
                lambda name, media_id, limit: download_media(
                    client, name, f"/_matrix/federation/v1/media/download/{media_id}",
                    max_bytes=limit),
                server.media.max_upload_bytes)
        services.append(listener)
    return services


def _roles(names: tuple[str, ...], key: str) -> frozenset[Role]:
    try:
        return frozenset(Role(n) for n in names)
    except ValueError:
        raise ValueError(f"chat.{key}: unknown role in {list(names)}") from None


def chat_rights(settings: Settings) -> ChatRights:
    """The messenger rights of ``[chat]``."""
    c = settings.chat
    return ChatRights(_roles(c.create_rooms, "create_rooms"),
                      _roles(c.start_direct, "start_direct"),
                      frozenset(g.lower() for g in c.create_rooms_groups),
                      frozenset(g.lower() for g in c.start_direct_groups))


def quiet_hours(school: School) -> QuietHours | None:
    """The quiet hours of ``[quiet_hours]`` (None: switched off)."""
    q = school.settings.quiet_hours
    if not q.enabled:
        return None
    try:
        rules = QuietRules(QuietWindow.parse(q.window, q.weekends), q.timezone,
                           parse_role_windows(q.roles, q.weekends))
    except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"quiet_hours: {exc}") from None
    return QuietHours(school.db, rules, school.settings.school.domain.lower())


def federation_listener(school: School, server: MatrixServer | None = None
                        ) -> FederationListener:
    """The Server-Server API listener with the school's signing key (``schulhof init``
    made it beside the DKIM keys) and a client for fetching other servers' keys;
    with the school's client API ``server``, claimed keys reach its /sync and its
    rooms federate: their events go out through the listener's sender, joins and
    invites through its client, and received PDUs and the room endpoints reach them."""

    settings = school.settings
    server_name = settings.school.domain.lower()
    key = signing_key(school)
    if key is None:
        raise ValueError("the Matrix signing key is missing (keys/matrix-signing.pem): "
                         "federation needs it; run `schulhof init` or set "
                         "listen.federation = -1")
    allowed = settings.matrix_federation_servers
    f = settings.federation
    client = FederationClient(server_name, key, school.resolver,
                              ca_file=settings.path(f.tls_ca_file).as_posix()
                              if f.tls_ca_file else None,
                              allowed=allowed.__contains__)
    keyring = KeyRing(client, notaries=f.matrix_notary_servers)
    sender = TransactionSender(
        Outbox(school.db), client,
        peers=None if server is None else partial(servers_sharing_rooms, school.db,
                                                  server_name))
    inbox: TransactionHandler = UnknownRoomsInbox()
    rooms = server.rooms if server is not None else None
    if rooms is not None:
        rooms.enable_federation(client, event_key_lookup(server_name, key, keyring),
                                OutboxQueue(sender.wake), allowed.__contains__)
        assert rooms.remote_events is not None
        inbox = RoomsInbox(rooms.remote_events)
    context = FederationContext(
        server_name=server_name, signing_key=key, keyring=keyring,
        directory=school.directory, allowed=allowed.__contains__,
        received=ReceivedTransactions(school.db), transactions=inbox,
        key_validity_ms=int(f.matrix_key_validity_hours * 3600 * 1000),
        local_keys=LocalKeys(school.db, school.directory, server_name,
                             keys_claimed=server.sync.keys_changed if server else None),
        edus=None if server is None else EduReceiver(
            school.db, server_name, server.typing, server.receipts, server.e2ee),
        media=None if server is None else server.media,
        rooms=rooms.resident if rooms is not None else None,
        contacted=sender.contacted_by)
    tls = school.tls.context()
    return FederationListener(context, client, sender, bind=settings.listen.bind,
                              port=settings.listen.federation, ssl_context=tls,
                              http_limits=http_limits(school, TrustedProxies()))


def federate_ephemeral(server: MatrixServer, listener: FederationListener) -> None:
    """Local typing, receipts, to-device messages and key changes go to other servers
    as EDUs through the listener's outbox (``messenger.federation_edus``)."""
    ctx = listener.context
    assert ctx.local_keys is not None
    ephemeral = EphemeralFederation(server.rooms.db, ctx.server_name, listener.sender.outbox,
                                    listener.sender.wake, ctx.allowed, ctx.local_keys)
    server.typing.federation = ephemeral.typing_changed
    server.receipts.federation = ephemeral.receipt
    server.e2ee.federation = ephemeral


def http_limits(school: School, proxies: TrustedProxies) -> HttpLimits:
    """The slow-client and per-address limits of an HTTP listener (``[http]``)."""
    h = school.settings.http
    return HttpLimits(header_timeout=h.header_timeout_seconds,
                      body_timeout=h.body_timeout_seconds,
                      min_body_rate=h.min_body_bytes_per_second,
                      keepalive_timeout=h.keepalive_timeout_seconds,
                      max_connections_per_ip=h.max_connections_per_ip, exempt=proxies,
                      reuse_port=school.settings.listen.reuse_port)


def rate_limits(send_per_second: float, send_burst: int) -> RateLimits:
    """The default limits with the school's per-user send bucket."""
    if send_per_second <= 0 or send_burst < 1:
        raise ValueError("matrix.send_messages_per_second must be > 0 and "
                         "matrix.send_burst >= 1")
    rules = dict(RateLimits().rules)
    rules["send"] = (RateLimit(send_per_second, send_burst), rules["send"][1])
    return RateLimits(rules=rules)


def school_rooms(school: School) -> SchoolRooms:
    """The school-room keeper for admin commands, which run without the server.

    Its notifier wakes nobody (the server's /sync long-polls live in another
    process); a running server's clients see the change on their next poll.
    """
    domain = school.settings.school.domain.lower()
    rooms = RoomService(school.db, domain, Notifier(),
                        ChatPolicy(school.directory, domain, domain),
                        signer=event_signer(school))
    # What it posts notifies members as a server's own sends do (their unread counts).
    rooms.writer.event_stored = UnreadCounts(school.db, domain).event_stored
    if school.settings.listen.federation >= 0 and rooms.writer.server_name is not None:
        # Posts into rooms shared with other schools are queued for them; the running
        # server's sender finds the queue on its next look (federation.matrix.sender).
        rooms.writer.outbox = OutboxQueue(lambda _destinations: None)
    keeper = SchoolRooms(school.directory, rooms)
    if school.settings.listen.federation >= 0:
        keeper.federated_servers = school.settings.matrix_federation_servers
    return keeper


class RequestMetrics:
    """Matrix requests by status class, and how long /sync took (long-polls included)."""

    def __init__(self, metrics: SchoolMetrics) -> None:
        self._metrics = metrics
        self._by_class: dict[int, Counter] = {}  # status // 100 -> its labelled counter

    def started(self) -> None:
        self._metrics.matrix_in_progress.inc()

    def finished(self, path: str, status: int, seconds: float) -> None:
        self._metrics.matrix_in_progress.dec()
        kind = status // 100
        counter = self._by_class.get(kind)
        if counter is None:
            counter = self._by_class[kind] = self._metrics.matrix_requests.labels(f"{kind}xx")
        counter.inc()
        if path.endswith("/sync"):
            self._metrics.sync_seconds.observe(seconds)

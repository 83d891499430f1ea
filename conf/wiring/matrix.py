"""Wiring of the Matrix client API service into a School (see conf.wiring).

Listens on ``listen.bind``:``listen.matrix`` (0 = a free port, -1 = off);
the Matrix server name is the school's domain, so user ids are
``@login:domain`` beside the mail address ``login@domain``.  Uploaded media
live under ``<data_dir>/media``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from directory.client_address import TrustedProxies
from messenger.limits import MessengerLimits
from messenger.ratelimit import RateLimit, RateLimits
from messenger.rooms.policy import ChatPolicy
from messenger.rooms.service import RoomService
from messenger.school_rooms import SchoolRooms
from messenger.server import MatrixServer
from messenger.sync.notifier import Notifier

if TYPE_CHECKING:
    from conf.app import School, Service


def build(school: School) -> list[Service]:
    settings = school.settings
    if settings.listen.matrix < 0:
        return []
    m = settings.matrix
    return [MatrixServer(
        db=school.db, directory=school.directory, authenticator=school.authenticator,
        server_name=settings.school.domain.lower(), mail_domain=settings.school.domain.lower(),
        bind=settings.listen.bind, port=settings.listen.matrix,
        limits=MessengerLimits(max_upload_bytes=m.max_upload_mib * 1024 * 1024),
        media_dir=settings.data_dir / "media",
        group_sync_interval=m.group_sync_interval_seconds,
        auto_join_groups=m.auto_join_group_rooms, push_gateways=m.push_gateways,
        trusted_proxies=TrustedProxies.parse(settings.listen.trusted_proxies),
        rate_limits=rate_limits(m.send_messages_per_second, m.send_burst))]


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
                        ChatPolicy(school.directory, domain, domain))
    return SchoolRooms(school.directory, rooms)

"""Federation for a command's room service (``schulhof user delete``, the admin
use cases run outside the server), apart from ``conf.wiring.matrix`` so that a
command does not load the client and federation APIs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conf.wiring.signing import event_key_lookup, signing_key
from federation.matrix.client import FederationClient
from federation.matrix.keyring import KeyRing
from messenger.rooms.federating import OutboxQueue
from messenger.rooms.service import RoomService

if TYPE_CHECKING:
    from conf.app import School


def command_line_federation(school: School, rooms: RoomService) -> None:
    """A command's room service (an erasure, say) federates like the server's: events
    of rooms shared with other servers are queued for them (the running server's
    sender finds the queue on its next look), and what needs an answer from another
    server (declining an invitation of its room) goes through a client of its own,
    closed with the school."""
    key = signing_key(school)
    if key is None:  # no key, nothing to sign with: queue only
        rooms.writer.outbox = OutboxQueue(lambda _destinations: None)
        return
    settings = school.settings
    server_name = settings.school.domain.lower()
    allowed = settings.matrix_federation_servers
    f = settings.federation
    client = FederationClient(server_name, key, school.resolver,
                              ca_file=settings.path(f.tls_ca_file).as_posix()
                              if f.tls_ca_file else None,
                              allowed=allowed.__contains__)
    school.close_later(client.close)
    keyring = KeyRing(client, notaries=f.matrix_notary_servers)
    rooms.enable_federation(client, event_key_lookup(server_name, key, keyring),
                            OutboxQueue(lambda _destinations: None), allowed.__contains__)

"""Each package's part of the admin use cases, built for one school.

A running server's own room service is used when there is one (its sync cache
and write lock see the changes at once); the command line builds its own, like
``schulhof rooms`` does, and a running server catches up from the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailserver.store.account_data import MailAccountData
from messenger.account_data import MessengerAccountData
from messenger.rooms.service import RoomService

if TYPE_CHECKING:
    from conf.app import School
    from messenger.server import MatrixServer


def running_matrix(school: School) -> MatrixServer | None:
    """The school's Matrix server if it runs in this process (the admin web pages)."""
    if not school.services:  # a command: the client API is not even imported
        return None
    from messenger.server import MatrixServer

    for service in school.services:
        if isinstance(service, MatrixServer):
            return service
    return None


def room_service(school: School, *, federate: bool = True) -> RoomService:
    """The running server's room service, else one of the command's own; ``federate``:
    it also reaches other servers (an erasure), not needed to read (an export, which
    then loads no federation client: issue 17's memory target)."""
    server = running_matrix(school)
    if server is not None:
        return server.rooms
    from conf.wiring.signing import event_signer
    from messenger.rooms.policy import ChatPolicy
    from messenger.sync.notifier import Notifier

    domain = server_name(school)
    rooms = RoomService(school.db, domain, Notifier(),
                        ChatPolicy(school.directory, domain, domain), signer=event_signer(school))
    if federate and school.settings.listen.federation >= 0 \
            and rooms.writer.server_name is not None:
        from conf.wiring.command_federation import command_line_federation

        # What the command line writes into rooms shared with other schools (an
        # erasure's redactions and leaves) is queued for them; the running server's
        # sender finds the queue on its next look (federation.matrix.sender); an
        # invitation of another server's room is declined there.
        command_line_federation(school, rooms)
    return rooms


def mail_data(school: School) -> MailAccountData:
    return MailAccountData(school.mail_store)


def messenger_data(school: School, *, federate: bool = True) -> MessengerAccountData:
    return MessengerAccountData(school.db, room_service(school, federate=federate),
                                school.settings.data_dir / "media")


def server_name(school: School) -> str:
    return school.settings.school.domain.lower()

"""Wiring of the Matrix client API service into a School (see conf.wiring).

Listens on ``listen.bind``:``listen.matrix`` (0 = a free port, -1 = off);
the Matrix server name is the school's domain, so user ids are
``@login:domain`` beside the mail address ``login@domain``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from messenger.limits import MessengerLimits
from messenger.server import MatrixServer

if TYPE_CHECKING:
    from conf.app import School, Service


def build(school: School) -> list[Service]:
    settings = school.settings
    if settings.listen.matrix < 0:
        return []
    return [MatrixServer(
        db=school.db, directory=school.directory, authenticator=school.authenticator,
        server_name=settings.school.domain.lower(), mail_domain=settings.school.domain.lower(),
        bind=settings.listen.bind, port=settings.listen.matrix, limits=MessengerLimits())]

"""Password resets by an admin, with the new password for a letter (issue 17)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from directory.audit import Actor
from directory.importer import InitialPassword
from directory.passwords import generate_password

if TYPE_CHECKING:
    from conf.app import School


async def reset_password(school: School, login: str, actor: Actor) -> InitialPassword:
    """A new random password for ``login`` (the import's length and alphabet), set now;
    returned for the letter, never logged."""
    directory = school.directory
    account = await directory.get_account(login)
    password = generate_password(school.settings.importer.password_length)
    await directory.set_password(account.login, password)
    groups = await directory.groups_of(account.login)
    classes = sorted(g.display_name or g.name for g, _ in groups if g.kind.value == "class")
    await school.audit.record(actor, "account.password_reset", account.login)
    return InitialPassword(account.login, directory.address_of(account.login),
                           account.first_name, account.last_name, account.role.value,
                           ", ".join(classes), password)

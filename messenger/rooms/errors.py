"""Domain errors of the messenger; the HTTP edge maps each to a Matrix errcode."""

from __future__ import annotations


class MessengerError(Exception):
    """Base of the messenger's domain errors."""


class Forbidden(MessengerError):
    """The auth rules, the role policy or a permission check refused (M_FORBIDDEN)."""


class AuthRuleViolation(Forbidden):
    """An event failed the room version's authorization rules."""


class RoomNotFound(MessengerError):
    """No such room, alias or event known here (M_NOT_FOUND)."""


class InvalidRequest(MessengerError):
    """A request value is malformed (M_INVALID_PARAM / M_BAD_JSON)."""


class DuplicateAnnotation(InvalidRequest):
    """The sender already annotated the event with this type and key (400
    M_DUPLICATE_ANNOTATION)."""


class DeviceLoggedOut(MessengerError):
    """The sending device was logged out while its request was on the way."""


class AliasInUse(MessengerError):
    """The room alias is already taken (409)."""


class UnsupportedVersion(MessengerError):
    """createRoom asked for a room version we do not implement."""


class TooLarge(MessengerError):
    """An upload or request is larger than the server's limit (413 M_TOO_LARGE)."""


class RateLimited(MessengerError):
    """Too many requests from one user or address (429 M_LIMIT_EXCEEDED)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many requests; retry in {retry_after:.1f} s")
        self.retry_after = retry_after

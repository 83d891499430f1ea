"""Errors of the Server-Server API client, apart from ``federation.matrix.client`` so
that code which only catches them (the room service) does not load aiohttp and DNS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FederationRequestError(Exception):
    """The other server could not be reached or answered with an error."""

    def __init__(self, message: str, status: int | None = None,
                 body: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = dict(body or {})

    @property
    def errcode(self) -> str | None:
        code = self.body.get("errcode")
        return code if isinstance(code, str) else None


class DestinationRefused(FederationRequestError):
    """The school does not federate with that server (not a partner, not allowed)."""

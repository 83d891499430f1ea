"""Limits of the Matrix client API, handed in by the composition root as one value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MessengerLimits:
    max_request_bytes: int = 1024 * 1024
    max_event_bytes: int = 65536  # spec: a PDU may not exceed 64 KiB
    max_sync_timeout_ms: int = 60_000
    default_timeline_limit: int = 20
    max_timeline_limit: int = 500
    default_messages_limit: int = 10
    max_messages_limit: int = 1000
    max_upload_bytes: int = 20 * 1024 * 1024
    # /sync responses built at once: below the database pool size, so message sends
    # (and token lookups) always find a connection while many long-polls wake.
    max_concurrent_sync_builds: int = 4

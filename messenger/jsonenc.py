"""JSON encoding of client API responses: orjson when installed, else the stdlib.

/sync responses are the server's hottest output; orjson encodes them several
times faster and can splice in pre-encoded event JSON (``raw``), so an event
rendered once in the sync cache is not re-encoded for every recipient.
Without orjson the same calls work on plain dicts.
"""

from __future__ import annotations

import json
from typing import Any

try:  # an optional speed-up: the behaviour is the same without it
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is missing
    orjson = None  # type: ignore[assignment]

HAS_FRAGMENTS = orjson is not None and hasattr(orjson, "Fragment")


def dumps(value: Any) -> bytes:
    """UTF-8 JSON (``ensure_ascii=False`` like the stdlib path), as bytes."""
    if orjson is not None:
        try:
            # NON_STR_KEYS: integer keys become strings, as json.dumps does.
            return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            pass  # e.g. integers beyond 64 bits: the stdlib copes
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def object_head(value: dict[str, Any]) -> bytes | None:
    """The encoding of a non-empty object without its closing brace, to be
    completed by ``raw(head + b',"key":...}')``; None without fragment support."""
    if not HAS_FRAGMENTS or not value:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)[:-1]


def raw(encoded: bytes) -> Any:
    """Already-encoded JSON to embed as is in a value given to ``dumps``."""
    return orjson.Fragment(encoded)

"""Login names from people's names: lower case ASCII, ``first.last``, numbered on collision.

German transliteration first (ä→ae, ö→oe, ü→ue, ß→ss), then any other accent
is dropped via Unicode decomposition (é→e); whatever is left that is not a
letter or digit becomes a separator.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container

_GERMAN = str.maketrans({
    "ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue",
    "ẞ": "SS", "æ": "ae", "Æ": "Ae", "œ": "oe", "Œ": "Oe", "ø": "o", "Ø": "O",
    "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "Th", "ı": "i",
})
MAX_BASE_LENGTH = 56  # leaves room for a collision number within 64 characters


def transliterate(text: str) -> str:
    # NFC first: exports from some systems store "ü" as "u" + combining diaeresis.
    text = unicodedata.normalize("NFC", text).translate(_GERMAN)
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed.encode("ascii", "ignore").decode("ascii")


def _slug(text: str) -> str:
    ascii_text = transliterate(text).lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def login_base(first_name: str, last_name: str) -> str:
    """``first.last`` (or the one part that exists), always a valid local part."""
    parts = [p for p in (_slug(first_name), _slug(last_name)) if p]
    base = ".".join(parts) or "user"
    base = base[:MAX_BASE_LENGTH].strip(".-")
    return base or "user"


def unique_login(base: str, taken: Container[str]) -> str:
    """``base`` if free, else ``base2``, ``base3`` ... (never the taken ones)."""
    if base not in taken:
        return base
    n = 2
    while f"{base}{n}" in taken:
        n += 1
    return f"{base}{n}"

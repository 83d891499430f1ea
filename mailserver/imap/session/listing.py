"""LIST / LSUB matching (RFC 9051 6.3.9, RFC 3501 6.3.8-6.3.9, LIST-EXTENDED
RFC 5258, SPECIAL-USE RFC 6154, CHILDREN RFC 3348): pure functions from the
account's mailboxes and a command to the LIST lines, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from mailserver.imap.wire import responses as r

SEPARATOR = "/"


@dataclass(frozen=True)
class MailboxEntry:
    """What LIST needs to know of one existing mailbox."""

    name: str
    special_use: str | None
    subscribed: bool
    # False: a subscription whose mailbox was deleted (RFC 3501 6.3.6 keeps it).
    exists: bool = True


@lru_cache(maxsize=256)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """``*`` matches anything, ``%`` anything but the separator (RFC 9051 6.3.9)."""
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "%":
            parts.append(f"[^{re.escape(SEPARATOR)}]*")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def canonical_pattern(reference: str, pattern: str) -> str:
    """Reference and pattern joined (RFC 9051 6.3.9: the reference is a prefix);
    an INBOX first level is case-insensitive (RFC 9051 5.1)."""
    if pattern.startswith(SEPARATOR) or not reference:
        joined = pattern
    elif reference.endswith(SEPARATOR):
        joined = reference + pattern
    else:
        joined = reference + SEPARATOR + pattern if pattern else reference
    head, sep, rest = joined.partition(SEPARATOR)
    if head.upper() == "INBOX":
        joined = "INBOX" + sep + rest
    return joined


def matches(name: str, pattern: str) -> bool:
    return _pattern_regex(pattern).fullmatch(name) is not None


def _parents(name: str) -> list[str]:
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:i]) for i in range(1, len(parts))]


def list_responses(mailboxes: Iterable[MailboxEntry], reference: str,
                   patterns: tuple[str, ...], *, selection: tuple[str, ...] = (),
                   return_subscribed: bool = False, return_special_use: bool = False,
                   extended: bool = False, lsub: bool = False) -> list[r.ListData]:
    """The ``* LIST`` (or ``* LSUB``) lines for ``patterns`` (RFC 5258 3).

    Children attributes are always sent (CHILDREN, RFC 3348 and RFC 9051
    make them cheap here); special-use attributes are sent unless
    LIST-EXTENDED asked for other return options only (RFC 6154 2).
    A superior that does not exist but has matching inferiors appears
    as ``\\NoSelect`` for ``%`` (RFC 9051 6.3.9) or ``\\NonExistent``.
    """
    every = list(mailboxes)
    boxes = {box.name: box for box in every if box.exists}
    names = set(boxes)
    with_children = {parent for name in names for parent in _parents(name)}
    subscribed_only = "SUBSCRIBED" in selection or lsub
    # Subscriptions without a mailbox are listed only when subscriptions
    # are asked for: LSUB ``\Noselect`` (RFC 3501 6.3.9), LIST (SUBSCRIBED)
    # ``\NonExistent \Subscribed`` (RFC 5258 3, 5).
    orphans = {box.name for box in every if not box.exists} if subscribed_only else set()
    orphan_parents = {parent for name in orphans for parent in _parents(name)}
    special_only = "SPECIAL-USE" in selection
    recursive = "RECURSIVEMATCH" in selection
    show_special = return_special_use or special_only or not extended
    show_subscribed = return_subscribed or "SUBSCRIBED" in selection
    out: list[r.ListData] = []
    seen: set[str] = set()
    for raw in patterns:
        if raw == "" and not extended:
            # RFC 9051 6.3.9: the empty pattern asks for the delimiter only.
            out.append(r.ListData(("\\Noselect",), SEPARATOR, "", lsub=lsub))
            continue
        pattern = canonical_pattern(reference, raw)
        candidates = sorted(names | with_children | orphans | orphan_parents,
                            key=lambda n: (n != "INBOX", n))
        for name in candidates:
            if name in seen or not matches(name, pattern):
                continue
            box = boxes.get(name)
            childinfo: tuple[str, ...] = ()
            if name in orphans and box is None:
                kept = ("\\Noselect",) if lsub else ("\\NonExistent", "\\Subscribed")
                out.append(r.ListData(kept, SEPARATOR, name, lsub=lsub))
                seen.add(name)
                continue
            if subscribed_only:
                sub_children = any(n.startswith(name + SEPARATOR) for n in orphans) or any(
                    boxes[n].subscribed for n in names if n.startswith(name + SEPARATOR))
                if box is None or not box.subscribed:
                    # RFC 5258 3.5 / RFC 3501 6.3.9: a parent of subscribed
                    # children shows with CHILDINFO (or \Noselect for LSUB %).
                    if recursive and sub_children:
                        childinfo = ("SUBSCRIBED",)
                    elif lsub and sub_children and "%" in pattern:
                        out.append(r.ListData(("\\Noselect",), SEPARATOR, name, lsub=True))
                        seen.add(name)
                        continue
                    else:
                        continue
            if special_only and (box is None or not box.special_use):
                continue
            attributes: list[str] = []
            if box is None:
                attributes.append("\\NonExistent" if extended else "\\Noselect")
            if box is not None or name in with_children:
                attributes.append("\\HasChildren" if name in with_children
                                  else "\\HasNoChildren")
            if box is not None and show_subscribed and box.subscribed and not lsub:
                attributes.append("\\Subscribed")
            if box is not None and box.special_use and show_special:
                attributes.append(box.special_use)
            out.append(r.ListData(tuple(attributes), SEPARATOR, name, childinfo, lsub=lsub))
            seen.add(name)
    return out

"""aiosmtpd's command, hook and AUTH tables, found once per class instead of per connection.

aiosmtpd's ``SMTP.__init__`` finds the protocol's ``smtp_*`` commands, the
handler's ``handle_*`` hooks and the ``auth_*`` mechanisms of both with
``inspect.getmembers`` and ``dir`` on every new connection, and inspects the
EHLO hook's signature: about 1 ms, a third of what a one-message connection
cost ``serve`` under Postfix's ``smtp-source`` (issue 15).  Which names exist
depends only on the two classes, so ``CommandTables`` finds them the first
time a (protocol class, handler class) pair connects, with aiosmtpd's own
rules, and afterwards only binds them to the new connection's objects.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# aiosmtpd keeps (method, is_builtin) per mechanism in this NamedTuple; its AUTH
# command reads both fields, so the table we build must hold the same type.
from aiosmtpd.smtp import _AuthMechAttr


@dataclass(frozen=True)
class CommandNames:
    """The attribute names behind one class pair's tables."""

    commands: tuple[tuple[str, str], ...]  # (verb, attribute of the protocol)
    hooks: tuple[tuple[str, str], ...]  # (verb, attribute of the handler)
    # (mechanism, attribute, True if the protocol's own, False if the handler's)
    mechanisms: tuple[tuple[str, str, bool], ...]
    ehlo_hook_version: str | None  # aiosmtpd's "old" (4 arguments) or "new" (5)


@dataclass(frozen=True)
class BoundTables:
    """What aiosmtpd's ``SMTP.__init__`` stores as ``_smtp_methods``,
    ``_handle_hooks``, ``_auth_methods`` and ``_ehlo_hook_ver``."""

    commands: dict[str, Any]
    hooks: dict[str, Callable[..., Any]]
    mechanisms: dict[str, _AuthMechAttr]
    ehlo_hook_version: str | None


def find_names(protocol: object, handler: object, excluded: Iterable[str]) -> CommandNames:
    """The names aiosmtpd 1.4 would find (``SMTP.__init__``), by its rules and in its order."""
    mechanisms: dict[str, tuple[str, bool]] = {}
    for obj in (protocol, handler):
        for name, member in inspect.getmembers(obj):
            if name.startswith("auth_"):
                mechanism = getattr(member, "__auth_mechanism_name__",
                                    name.replace("auth_", "").replace("__", "-"))
                mechanisms[mechanism] = (name, obj is protocol)
    for mechanism in excluded:
        mechanisms.pop(mechanism, None)
    hooks = tuple((name.replace("handle_", ""), name) for name in dir(handler)
                  if name.startswith("handle_"))
    version: str | None = None
    if "handle_EHLO" in dict(hooks).values():
        arity = len(inspect.signature(handler.handle_EHLO).parameters)  # type: ignore[attr-defined]
        if arity not in (4, 5):
            raise RuntimeError("Unsupported EHLO Hook")
        version = "old" if arity == 4 else "new"
    commands = tuple((name.replace("smtp_", ""), name) for name in dir(protocol)
                     if name.startswith("smtp_"))
    return CommandNames(commands, hooks,
                        tuple((m, name, own) for m, (name, own) in mechanisms.items()),
                        version)


class CommandTables:
    """The names per (protocol class, handler class, excluded mechanisms), bound per
    connection.  One per SMTP service: it holds nothing but what the classes define."""

    def __init__(self) -> None:
        self._names: dict[tuple[type, type, frozenset[str]], CommandNames] = {}

    def bind(self, protocol: object, handler: object,
             excluded: Iterable[str] = ()) -> BoundTables:
        excluded = frozenset(excluded)
        key = (type(protocol), type(handler), excluded)
        names = self._names.get(key)
        if names is None:
            names = self._names[key] = find_names(protocol, handler, excluded)
        return BoundTables(
            commands={verb: getattr(protocol, name) for verb, name in names.commands},
            hooks={verb: getattr(handler, name) for verb, name in names.hooks},
            mechanisms={m: _AuthMechAttr(getattr(protocol if own else handler, name), own)
                        for m, name, own in names.mechanisms},
            ehlo_hook_version=names.ehlo_hook_version)

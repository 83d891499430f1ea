"""Commands -> bytes, the client side of RFC 9051 9: for tests, tools and
any client code of ours (the server only parses commands)."""

from __future__ import annotations

import base64
import re

from mailserver.imap.wire import commands as c
from mailserver.imap.wire.fetch_items import format_attribute
from mailserver.imap.wire.mutf7 import encode_mutf7
from mailserver.imap.wire.search import format_search_key
from mailserver.imap.wire.serializer import format_internal_date

_ASTRING_ATOM = re.compile(rb"[\x21\x23\x24\x26-\x27\x2b-\x5b\x5d-\x7a\x7c-\x7e]+")
_LIST_ATOM = re.compile(rb"[\x21\x23-\x27\x2a-\x5b\x5d-\x7a\x7c-\x7e]+")


class CommandWriter:
    """Renders commands; ``literal_plus`` uses ``{N+}`` (RFC 7888) so that a
    client need not wait for continuations."""

    def __init__(self, *, utf8: bool = False, literal_plus: bool = False) -> None:
        self.utf8 = utf8
        self.plus = b"+" if literal_plus else b""

    def string(self, data: bytes, *, binary: bool = False) -> bytes:
        if not binary and len(data) <= 1024 and all(
                0x20 <= b <= 0x7E or (self.utf8 and b >= 0x80) for b in data):
            return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        prefix = b"~" if binary else b""
        return prefix + b"{%d%s}\r\n" % (len(data), self.plus) + data

    def astring(self, data: bytes) -> bytes:
        return data if _ASTRING_ATOM.fullmatch(data) else self.string(data)

    def text(self, value: str) -> bytes:
        return self.astring(value.encode("utf-8"))

    def mailbox(self, name: str) -> bytes:
        return self.astring(name.encode("utf-8") if self.utf8 else encode_mutf7(name))

    def pattern(self, name: str) -> bytes:
        raw = name.encode("utf-8") if self.utf8 else encode_mutf7(name)
        return raw if _LIST_ATOM.fullmatch(raw) else self.string(raw)

    def _quote_text(self, value: str) -> str:
        # Search strings, rendered as str: literals carry their CRLF inline.
        return self.astring(value.encode("utf-8")).decode("utf-8", "surrogateescape")

    def render(self, command: c.Command) -> bytes:
        name, args = self._parts(command)
        line = command.tag.encode("ascii") + b" " + name
        if args:
            line += b" " + args
        return line + b"\r\n"

    def _parts(self, command: c.Command) -> tuple[bytes, bytes]:
        uid = b"UID " if getattr(command, "uid", False) is True else b""
        match command:
            case c.Capability():
                return b"CAPABILITY", b""
            case c.Noop():
                return b"NOOP", b""
            case c.Logout():
                return b"LOGOUT", b""
            case c.StartTls():
                return b"STARTTLS", b""
            case c.Namespace():
                return b"NAMESPACE", b""
            case c.Idle():
                return b"IDLE", b""
            case c.Check():
                return b"CHECK", b""
            case c.Close():
                return b"CLOSE", b""
            case c.Unselect():
                return b"UNSELECT", b""
            case c.Expunge(_, None):
                return b"EXPUNGE", b""
            case c.Expunge(_, uids) if uids is not None:
                return b"UID EXPUNGE", bytes(uids)
            case c.Authenticate(_, mechanism, initial):
                args = mechanism.encode("ascii")
                if initial is not None:
                    args += b" " + (base64.b64encode(initial) if initial else b"=")
                return b"AUTHENTICATE", args
            case c.Login(_, username, password):
                return b"LOGIN", self.text(username) + b" " + self.text(password)
            case c.Enable(_, capabilities):
                return b"ENABLE", " ".join(capabilities).encode("ascii")
            case c.Select():
                return self._select(command)
            case c.Create(_, mailbox, special_use):
                args = self.mailbox(mailbox)
                if special_use:
                    args += b" (USE (" + " ".join(special_use).encode("ascii") + b"))"
                return b"CREATE", args
            case c.Delete(_, mailbox):
                return b"DELETE", self.mailbox(mailbox)
            case c.Rename(_, old, new):
                return b"RENAME", self.mailbox(old) + b" " + self.mailbox(new)
            case c.Subscribe(_, mailbox):
                return b"SUBSCRIBE", self.mailbox(mailbox)
            case c.Unsubscribe(_, mailbox):
                return b"UNSUBSCRIBE", self.mailbox(mailbox)
            case c.ListCommand():
                return b"LIST", self._list(command)
            case c.Lsub(_, reference, pattern) if pattern is not None:
                return b"LSUB", self.mailbox(reference) + b" " + self.pattern(pattern)
            case c.Status(_, mailbox, items):
                return b"STATUS", self.mailbox(mailbox) + b" (" + " ".join(items).encode() + b")"
            case c.Append(_, mailbox, messages):
                args = self.mailbox(mailbox)
                for message in messages:
                    args += b" "
                    if message.flags:
                        args += b"(" + " ".join(message.flags).encode("ascii") + b") "
                    if message.internal_date is not None:
                        args += format_internal_date(message.internal_date) + b" "
                    args += self.string(message.data, binary=message.binary) if (
                        message.binary) else b"{%d%s}\r\n" % (len(message.data), self.plus
                                                              ) + message.data
                return b"APPEND", args
            case c.GetQuota(_, root):
                return b"GETQUOTA", self.mailbox(root)
            case c.GetQuotaRoot(_, mailbox):
                return b"GETQUOTAROOT", self.mailbox(mailbox)
            case c.Id(_, None):
                return b"ID", b"NIL"
            case c.Id(_, params):
                pairs: list[bytes] = []
                for key, value in params or ():
                    pairs.append(self.string(key.encode("utf-8")))
                    pairs.append(b"NIL" if value is None else self.string(value.encode("utf-8")))
                return b"ID", b"(" + b" ".join(pairs) + b")"
            case c.Compress(_, mechanism):
                return b"COMPRESS", mechanism.encode("ascii")
            case c.Search(_, key, _, charset, return_options):
                args = b""
                if return_options is not None:
                    args += b"RETURN (" + " ".join(return_options).encode("ascii") + b") "
                if charset is not None:
                    args += b"CHARSET " + charset.encode("ascii") + b" "
                text = format_search_key(key, self._quote_text)
                return uid + b"SEARCH", args + text.encode("utf-8", "surrogateescape")
            case c.Fetch(_, sequence_set, attributes, _, changed_since, vanished):
                args = bytes(sequence_set) + b" (" + " ".join(
                    format_attribute(a) for a in attributes).encode("ascii") + b")"
                modifiers = []
                if changed_since is not None:
                    modifiers.append(b"CHANGEDSINCE %d" % changed_since)
                if vanished:
                    modifiers.append(b"VANISHED")
                if modifiers:
                    args += b" (" + b" ".join(modifiers) + b")"
                return uid + b"FETCH", args
            case c.Store(_, sequence_set, mode, flags, silent, _, unchanged_since):
                args = bytes(sequence_set) + b" "
                if unchanged_since is not None:
                    args += b"(UNCHANGEDSINCE %d) " % unchanged_since
                args += {"add": b"+", "remove": b"-", "replace": b""}[mode] + b"FLAGS"
                args += b".SILENT" if silent else b""
                args += b" (" + " ".join(flags).encode("ascii") + b")"
                return uid + b"STORE", args
            case c.Copy(_, sequence_set, mailbox, _):
                return uid + b"COPY", bytes(sequence_set) + b" " + self.mailbox(mailbox)
            case c.Move(_, sequence_set, mailbox, _):
                return uid + b"MOVE", bytes(sequence_set) + b" " + self.mailbox(mailbox)
        raise TypeError(f"not a command: {command!r}")

    def _select(self, command: c.Select) -> tuple[bytes, bytes]:
        name = b"EXAMINE" if command.read_only else b"SELECT"
        args = self.mailbox(command.mailbox)
        params = []
        if command.condstore:
            params.append(b"CONDSTORE")
        if command.qresync is not None:
            q = command.qresync
            inner = b"%d %d" % (q.uidvalidity, q.modseq)
            if q.known_uids is not None:
                inner += b" " + bytes(q.known_uids)
            if q.seq_match is not None:
                inner += b" (%s %s)" % (bytes(q.seq_match[0]), bytes(q.seq_match[1]))
            params.append(b"QRESYNC (" + inner + b")")
        if params:
            args += b" (" + b" ".join(params) + b")"
        return name, args

    def _list(self, command: c.ListCommand) -> bytes:
        args = b""
        if command.selection:
            args += b"(" + " ".join(command.selection).encode("ascii") + b") "
        args += self.mailbox(command.reference) + b" "
        if len(command.patterns) == 1 and not command.extended:
            args += self.pattern(command.patterns[0])
        else:
            args += b"(" + b" ".join(self.pattern(p) for p in command.patterns) + b")"
        options = []
        if command.return_subscribed:
            options.append(b"SUBSCRIBED")
        if command.return_children:
            options.append(b"CHILDREN")
        if command.return_special_use:
            options.append(b"SPECIAL-USE")
        if command.status_items is not None:
            options.append(b"STATUS (" + " ".join(command.status_items).encode("ascii") + b")")
        if options or (command.extended and not command.selection and len(
                command.patterns) == 1):
            args += b" RETURN (" + b" ".join(options) + b")"
        return args


def serialize_command(command: c.Command, *, utf8: bool = False,
                      literal_plus: bool = False) -> bytes:
    """One command as the octets a client sends (literals inline)."""
    return CommandWriter(utf8=utf8, literal_plus=literal_plus).render(command)

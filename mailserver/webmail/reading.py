"""What the webmail shows of the mail store: folder pages and single messages.

Every lookup goes by (account, mailbox name, UID), never by a database id
from the browser, so a request can only ever reach the logged-in account's
own mail.  ``MessageView`` carries the text (text/plain, or the text of the
HTML) and the raw HTML part; the HTML is only ever shown sanitised in a
sandboxed frame (``html_view``).  Attachments are only offered for download.
"""

from __future__ import annotations

import email.header
import email.message
import email.parser
import email.policy
import email.utils
import html.parser
from dataclasses import dataclass
from datetime import datetime

from directory.db import Database
from mailserver.store import FlagMode, InvalidMailboxName, MailboxNotFound, MailStore, MessageMeta
from mailserver.store.bulk_reads import mailbox_by_name, messages_with_content, read_headers
from mailserver.store.names import normalise
from mailserver.store.search import SearchQuery, thread_root
from mailserver.webmail.image_senders import ImageSenders

PAGE_SIZE = 50
DRAFTS = "Drafts"
FOR_GOOD = {"Trash", "Junk"}  # deleting here deletes; these can be emptied
PROTECTED = {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}  # RFC 6154 folders
_HIDDEN_HTML = {"script", "style", "head", "title"}
_SHOWN_LINKS = ("https://", "http://", "mailto:")
_BLOCK_HTML = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table",
               "blockquote", "pre", "hr"}


class MessageGone(Exception):
    """No such message in this mailbox (expunged meanwhile, or never there)."""


@dataclass(frozen=True)
class Summary:
    uid: int
    subject: str
    sender: str
    date: str
    seen: bool
    size: int
    flagged: bool = False
    sent: datetime | None = None  # shown in the reader's language (Translator.when)


@dataclass(frozen=True)
class ConversationEntry:
    """One message of a conversation, as the message page lists it."""

    mailbox: str
    uid: int
    sender: str
    subject: str
    sent: datetime | None


@dataclass(frozen=True)
class Page:
    mailbox: str
    summaries: list[Summary]
    number: int
    pages: int
    total: int


@dataclass(frozen=True)
class Attachment:
    index: int
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class MessageView:
    uid: int
    subject: str
    sender: str
    to: str
    cc: str
    date: str
    text: str
    attachments: list[Attachment]
    html: str | None = None  # the raw text/html part, sanitised only when shown
    message_id: str = ""
    references: str = ""
    in_reply_to: str = ""
    reply_to: str = ""
    flagged: bool = False
    draft: bool = False
    bcc: str = ""  # only drafts keep it
    sent: datetime | None = None  # ``date`` is the German text quoted in replies


def _header_text(message: email.message.Message, name: str) -> str:
    try:
        return str(message.get(name, "") or "")
    except Exception:  # undecodable header on hostile input: show it raw
        raw = message.get_all(name) or []
        return " ".join(map(str, raw))


def _sent_at(message: email.message.Message) -> datetime | None:
    """The Date header (RFC 5322 3.6.1) in the sender's own time zone, if readable."""
    try:
        return email.utils.parsedate_to_datetime(_header_text(message, "Date"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _date_text(message: email.message.Message) -> str:
    parsed = _sent_at(message)
    return parsed.strftime("%d.%m.%Y %H:%M") if parsed is not None else ""


def _parse_headers(header: bytes) -> email.message.Message:
    """A header block for the message list: compat32, several times cheaper than the
    default policy's header objects (fifty of them make a folder page)."""
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(header)


def _list_header(message: email.message.Message, name: str) -> str:
    """A compat32 header's text, RFC 2047 encoded-words decoded, unfolded."""
    raw = message.get(name)
    if raw is None:
        return ""
    try:
        text = str(email.header.make_header(email.header.decode_header(str(raw))))
    except Exception:  # undecodable header on hostile input: show it raw
        text = str(raw)
    return " ".join(text.split())


class Mail:
    """The webmail's read and file operations for one school's mail store."""

    def __init__(self, store: MailStore, db: Database) -> None:
        self._store = store
        self._db = db
        self.settings = store.settings  # signature, vacation, forwarding
        self.image_senders = ImageSenders(db)  # "Bilder von ... immer anzeigen"

    async def folders(self, account_id: int) -> list[tuple[str, int]]:
        """(name, unseen) of every mailbox, INBOX first."""
        rows = await self._store.unseen_counts(account_id)
        if not rows and await self._store.ensure_default_mailboxes(account_id):
            rows = await self._store.unseen_counts(account_id)
        return sorted(rows, key=lambda row: (row[0] != "INBOX", row[0].lower()))

    async def page(self, account_id: int, mailbox: str, number: int,
                   query: SearchQuery | None = None) -> Page:
        """Newest first, PAGE_SIZE to a page, of the whole folder or of what ``query``
        finds in it (raises MailboxNotFound)."""
        number = max(number, 1)
        for _ in range(2):  # a page past the end shows the last one
            offset = (number - 1) * PAGE_SIZE
            if query is None or query.empty:
                found = await self._store.latest(account_id, mailbox, offset, PAGE_SIZE)
                self._store.index_soon(found.mailbox_id)  # ready by the first search
            else:
                found = await self._store.search(account_id, mailbox, query, offset, PAGE_SIZE)
            pages = max(1, -(-found.total // PAGE_SIZE))
            if number <= pages:
                break
            number = pages
        heads = await read_headers(self._db, [m.blob_id for m in found.messages])
        summaries = []
        for meta in found.messages:
            parsed = _parse_headers(heads.get(meta.blob_id, b""))
            summaries.append(Summary(meta.uid, _list_header(parsed, "Subject"),
                                     _list_header(parsed, "From"), _date_text(parsed),
                                     "\\Seen" in meta.flags, meta.size,
                                     "\\Flagged" in meta.flags, _sent_at(parsed)))
        return Page(mailbox, summaries, number, pages, found.total)

    async def conversation(self, account_id: int, mailbox: str, view: MessageView
                           ) -> list[ConversationEntry]:
        """The messages of ``view``'s conversation in this account's folders (those
        it came from and Sent; not Trash or Junk), oldest first; [] when alone."""
        root = thread_root(view.references, view.in_reply_to, view.message_id)
        if not root:
            return []
        boxes = [await self._mailbox_id(account_id, mailbox)]
        sent = await mailbox_by_name(self._db, account_id, "Sent")
        if sent is not None and sent.id not in boxes:
            boxes.append(sent.id)
        found = [(box, uid, blob_id) for box, uid, blob_id in
                 await self._store.conversation(account_id, root, boxes)
                 if normalise(box) not in FOR_GOOD]
        if len(found) < 2:
            return []
        heads = await read_headers(self._db, [blob_id for _, _, blob_id in found])
        entries = []
        for box, uid, blob_id in found:
            parsed = _parse_headers(heads.get(blob_id, b""))
            entries.append(ConversationEntry(box, uid, _list_header(parsed, "From"),
                                             _list_header(parsed, "Subject"),
                                             _sent_at(parsed)))
        return entries

    async def set_flag(self, account_id: int, mailbox: str, uids: list[int], flag: str,
                       on: bool) -> None:
        """Add or remove one flag (\\Seen, \\Flagged) on several messages (RFC 9051 6.4.6)."""
        mailbox_id = await self._mailbox_id(account_id, mailbox)
        await self._store.store_flags(mailbox_id, uids, FlagMode.ADD if on else FlagMode.REMOVE,
                                      [flag])

    async def move_many(self, account_id: int, mailbox: str, uids: list[int],
                        target: str) -> None:
        """Several messages into another folder at once (RFC 6851 MOVE)."""
        source = await self._mailbox_id(account_id, mailbox)
        destination = await self._mailbox_id(account_id, target)
        if destination != source and uids:
            await self._store.move(source, uids, destination)

    async def delete_many(self, account_id: int, mailbox: str, uids: list[int]) -> None:
        """Into Trash; from Trash and Junk for good."""
        source = await self._mailbox_id(account_id, mailbox)
        if normalise(mailbox) in FOR_GOOD:
            await self._store.store_flags(source, uids, FlagMode.ADD, ["\\Deleted"])
            await self._store.expunge(source, uids)
            return
        await self.move_many(account_id, mailbox, uids, "Trash")

    async def empty(self, account_id: int, mailbox: str) -> None:
        """Empty Trash or Junk (only those: other folders are emptied by deleting)."""
        if normalise(mailbox) not in FOR_GOOD:
            raise MailboxNotFound(f"{mailbox!r} is not emptied")
        snapshot = await self._store.select_snapshot(account_id, mailbox)
        uids = [state.uid for state in snapshot.messages]
        if uids:
            await self._store.store_flags(snapshot.mailbox.id, uids, FlagMode.ADD,
                                          ["\\Deleted"])
            await self._store.expunge(snapshot.mailbox.id, uids)

    async def rename_folder(self, account_id: int, old: str, new: str) -> None:
        """RENAME (RFC 9051 6.3.6); the special folders keep their names."""
        if normalise(old) in PROTECTED:
            raise InvalidMailboxName(f"{old!r} keeps its name")
        await self._store.rename_mailbox(account_id, old, new.strip())

    async def delete_folder(self, account_id: int, name: str) -> None:
        """DELETE (RFC 9051 6.3.4) of a folder of the user's own."""
        if normalise(name) in PROTECTED:
            raise InvalidMailboxName(f"{name!r} cannot be deleted")
        await self._store.delete_mailbox(account_id, name)

    async def _mailbox_id(self, account_id: int, mailbox: str) -> int:
        """One row by name: not the whole mailbox's state that a SELECT snapshot reads."""
        row = await mailbox_by_name(self._db, account_id, normalise(mailbox))
        if row is None:
            raise MailboxNotFound(f"no mailbox {mailbox!r}")
        return row.id

    async def _locate(self, account_id: int, mailbox: str, uid: int) -> tuple[int, MessageMeta]:
        mailbox_id = await self._mailbox_id(account_id, mailbox)
        metas = await self._store.fetch_messages(mailbox_id, [uid])
        if not metas or metas[0].uid != uid:
            raise MessageGone(f"no message {uid} in {mailbox}")
        return mailbox_id, metas[0]

    async def _message(self, account_id: int, mailbox: str,
                       uid: int) -> tuple[int, MessageMeta, email.message.EmailMessage]:
        mailbox_id, meta = await self._locate(account_id, mailbox, uid)
        data = await self._store.read_blob(meta.blob_id)
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
        return mailbox_id, meta, parsed

    async def open(self, account_id: int, mailbox: str, uid: int) -> MessageView:
        """The message as text, marked \\Seen (RFC 9051 6.4.5: like a BODY[] fetch)."""
        mailbox_id, meta, parsed = await self._message(account_id, mailbox, uid)
        if "\\Seen" not in meta.flags:
            await self._store.store_flags(mailbox_id, [uid], FlagMode.ADD, ["\\Seen"])
        return view_of(uid, parsed, meta.flags)

    async def find_content(self, account_id: int, sha256: str) -> tuple[str, int] | None:
        """Where the account keeps the message whose bytes have this sha256 (a link
        from the messenger bridge): a folder before Trash and Junk, else None."""
        found = await messages_with_content(self._db, account_id, sha256.lower())
        found.sort(key=lambda place: normalise(place[0]) in FOR_GOOD)
        return found[0] if found else None

    async def raw(self, account_id: int, mailbox: str, uid: int) -> bytes:
        """The message's bytes as stored (forward as attachment; raises MessageGone)."""
        _, meta = await self._locate(account_id, mailbox, uid)
        return await self._store.read_blob(meta.blob_id)

    async def inline_part(self, account_id: int, mailbox: str, uid: int,
                          content_id: str) -> tuple[str, bytes]:
        """(content type, bytes) of the part with this Content-ID (RFC 2392)."""
        _, _, parsed = await self._message(account_id, mailbox, uid)
        wanted = content_id.strip().strip("<>")
        for part in parsed.walk():
            if part.is_multipart():
                continue
            found = str(part.get("Content-ID", "") or "").strip().strip("<>")
            if found and found == wanted:
                return part.get_content_type(), _decoded(part)
        raise MessageGone(f"no part {content_id!r}")

    async def attachment(self, account_id: int, mailbox: str, uid: int,
                         index: int) -> tuple[str, bytes]:
        """(filename, content) of the attachment ``index`` (raises MessageGone)."""
        _, _, parsed = await self._message(account_id, mailbox, uid)
        for number, part in enumerate(parsed.iter_attachments()):
            if number == index:
                content = _decoded(part)
                return _filename(part, number), content
        raise MessageGone(f"no attachment {index}")

    async def attachment_parts(self, account_id: int, mailbox: str,
                               uid: int) -> list[tuple[str, str, bytes]]:
        """(filename, content type, content) of every attachment, in listing order."""
        _, _, parsed = await self._message(account_id, mailbox, uid)
        return [(_filename(part, number), part.get_content_type(),
                 _decoded(part))
                for number, part in enumerate(parsed.iter_attachments())]

    async def save_draft(self, account_id: int, message: bytes,
                         replaces: int | None = None) -> int:
        """File ``message`` in Drafts (\\Draft, \\Seen; RFC 6154 \\Drafts), dropping the
        version it replaces; returns its UID."""
        result = await self._store.append(account_id, DRAFTS, message,
                                          flags=("\\Draft", "\\Seen"))
        if replaces is not None:
            await self.delete_draft(account_id, replaces)
        return result.uid

    async def delete_draft(self, account_id: int, uid: int) -> None:
        """Remove a draft for good (sent, or replaced by a newer version)."""
        try:
            mailbox_id, _ = await self._locate(account_id, DRAFTS, uid)
        except (MailboxNotFound, MessageGone):
            return
        await self._store.store_flags(mailbox_id, [uid], FlagMode.ADD, ["\\Deleted"])
        await self._store.expunge(mailbox_id, [uid])

    async def move(self, account_id: int, mailbox: str, uid: int, target: str) -> None:
        """Into another of the account's folders (raises MailboxNotFound, MessageGone)."""
        mailbox_id, _ = await self._locate(account_id, mailbox, uid)
        destination = await self._mailbox_id(account_id, target)
        if destination != mailbox_id:
            await self._store.move(mailbox_id, [uid], destination)

    async def create_folder(self, account_id: int, name: str) -> None:
        """A new folder ("/" makes a hierarchy; raises MailboxExists, InvalidMailboxName)."""
        await self._store.create_mailbox(account_id, name.strip())

    async def move_to_trash(self, account_id: int, mailbox: str, uid: int) -> None:
        """Delete: into Trash, or for good when it is in Trash already."""
        mailbox_id, _ = await self._locate(account_id, mailbox, uid)
        trash = await self._mailbox_id(account_id, "Trash")
        if mailbox_id != trash:
            await self._store.move(mailbox_id, [uid], trash)
            return
        await self._store.store_flags(mailbox_id, [uid], FlagMode.ADD, ["\\Deleted"])
        await self._store.expunge(mailbox_id, [uid])


def view_of(uid: int, parsed: email.message.EmailMessage,
            flags: frozenset[str] = frozenset()) -> MessageView:
    """What the message page and the reply form need of one parsed message."""
    return MessageView(uid, _header_text(parsed, "Subject"),
                       _header_text(parsed, "From"), _header_text(parsed, "To"),
                       _header_text(parsed, "Cc"), _date_text(parsed), body_text(parsed),
                       attachments(parsed), html_body(parsed),
                       _header_text(parsed, "Message-ID").strip(),
                       " ".join(_header_text(parsed, "References").split()),
                       _header_text(parsed, "In-Reply-To").strip(),
                       _header_text(parsed, "Reply-To"),
                       "\\Flagged" in flags, "\\Draft" in flags, _header_text(parsed, "Bcc"),
                       _sent_at(parsed))


def html_body(message: email.message.EmailMessage) -> str | None:
    """The text/html body when the message has one (preferred over text/plain)."""
    try:
        part = message.get_body(preferencelist=("html",))
    except Exception:
        return None
    if part is None:
        return None
    try:
        content = part.get_content()
    except Exception:  # unknown charset or broken transfer encoding
        content = _decoded(part).decode("utf-8", "replace")
    return content if isinstance(content, str) else None


def _decoded(part: email.message.Message) -> bytes:
    """A leaf part's content with its transfer encoding undone (b"" if it has none)."""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _filename(part: email.message.EmailMessage, number: int) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    return name or f"attachment-{number + 1}"


def attachments(message: email.message.EmailMessage) -> list[Attachment]:
    found = []
    for number, part in enumerate(message.iter_attachments()):
        payload = _decoded(part)
        found.append(Attachment(number, _filename(part, number), part.get_content_type(),
                                len(payload)))
    return found


def body_text(message: email.message.EmailMessage) -> str:
    """The text to show: text/plain preferred, else HTML without its tags."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except Exception:
        part = None
    if part is None:
        return ""
    try:
        content = part.get_content()
    except Exception:  # unknown charset or broken transfer encoding
        payload = _decoded(part)
        content = payload.decode("utf-8", "replace")
    if not isinstance(content, str):
        return ""
    if part.get_content_type() == "text/html":
        return html_to_text(content)
    return content


class _TextOfHtml(html.parser.HTMLParser):
    """Text of HTML; a link's target is written after its text, as plain text
    (the reader sees where it goes; nothing becomes clickable)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._links: list[tuple[str, int]] = []  # (target, where its text starts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_HTML:
            self._hidden += 1
        elif tag in _BLOCK_HTML:
            self.parts.append("\n")
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self._links.append((href if href.startswith(_SHOWN_LINKS) else "", len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_HTML:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK_HTML:
            self.parts.append("\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            if href and not self._hidden and "".join(self.parts[start:]).strip() != href:
                self.parts.append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The readable text of an HTML mail body (tags, scripts and styles dropped)."""
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()

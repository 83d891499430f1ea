"""Authenticated-state commands on mailboxes (RFC 9051 6.3): ENABLE, CREATE,
DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (LIST-EXTENDED RFC 5258,
LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154), LSUB (RFC 3501 6.3.9),
NAMESPACE, STATUS (RFC 9051 6.3.11, STATUS=SIZE RFC 8438), GETQUOTA and
GETQUOTAROOT (RFC 9208 4.2-4.3) and APPEND (RFC 9051 6.3.12, UIDPLUS
RFC 4315, APPENDLIMIT RFC 7889)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from mailserver.imap.session.capabilities import ENABLEABLE
from mailserver.imap.session.core import AUTH
from mailserver.imap.session.listing import SEPARATOR, MailboxEntry, list_responses
from mailserver.imap.wire import commands as c
from mailserver.imap.wire import responses as r
from mailserver.imap.wire.sequence import SequenceSet
from mailserver.store.model import MailboxInfo, MailboxStatus

if TYPE_CHECKING:
    from mailserver.imap.session.core import ImapSession

QUOTA_ROOT = ""


async def enable(s: ImapSession, cmd: c.Enable) -> r.Tagged:
    """RFC 5161 3.1; QRESYNC implies CONDSTORE (RFC 7162 3.2.3)."""
    newly = []
    for name in cmd.capabilities:
        if name in ENABLEABLE and name not in s.enabled:
            s.enabled.add(name)
            newly.append("IMAP4rev2" if name == "IMAP4REV2" else name)
    if "QRESYNC" in s.enabled or "CONDSTORE" in s.enabled:
        s.condstore = True
    s.send(r.EnabledData(tuple(newly)))
    return r.Tagged(cmd.tag, "OK", "ENABLE completed")


def _name(name: str) -> str:
    # RFC 9051 6.3.4: a trailing separator only says "will have inferiors".
    return name.rstrip(SEPARATOR) if name.rstrip(SEPARATOR) else name


async def create(s: ImapSession, cmd: c.Create) -> r.Tagged:
    """RFC 9051 6.3.4 with CREATE-SPECIAL-USE (RFC 6154 3)."""
    if len(cmd.special_use) > 1:
        return r.Tagged(cmd.tag, "NO", "Only one special use per mailbox", r.Code("USEATTR"))
    special = cmd.special_use[0] if cmd.special_use else None
    try:
        await s.store.create_mailbox(s.account, _name(cmd.mailbox), special_use=special)
    except Exception as error:
        if special and type(error).__name__ == "InvalidMailboxName" and "special" in str(error):
            return r.Tagged(cmd.tag, "NO", "Unknown special use", r.Code("USEATTR"))
        raise
    return r.Tagged(cmd.tag, "OK", "CREATE completed")


async def delete(s: ImapSession, cmd: c.Delete) -> r.Tagged:
    """RFC 9051 6.3.5."""
    await s.store.delete_mailbox(s.account, cmd.mailbox)
    if s.view is not None and s.view.name == cmd.mailbox:
        s.select(None)  # our own selected mailbox is gone: back to authenticated
    return r.Tagged(cmd.tag, "OK", "DELETE completed")


async def rename(s: ImapSession, cmd: c.Rename) -> r.Tagged:
    """RFC 9051 6.3.6 (children move along; renaming INBOX moves its messages)."""
    await s.store.rename_mailbox(s.account, cmd.mailbox, _name(cmd.new_name))
    if s.view is not None and s.view.name == cmd.mailbox and cmd.mailbox != "INBOX":
        s.view.name = _name(cmd.new_name)
    return r.Tagged(cmd.tag, "OK", "RENAME completed")


async def subscribe(s: ImapSession, cmd: c.Subscribe) -> r.Tagged:
    await s.store.set_subscribed(s.account, cmd.mailbox, True)
    return r.Tagged(cmd.tag, "OK", "SUBSCRIBE completed")


async def unsubscribe(s: ImapSession, cmd: c.Unsubscribe) -> r.Tagged:
    await s.store.set_subscribed(s.account, cmd.mailbox, False)
    return r.Tagged(cmd.tag, "OK", "UNSUBSCRIBE completed")


def _entries(boxes: list[MailboxInfo], orphans: list[str] | None = None
             ) -> list[MailboxEntry]:
    return [MailboxEntry(box.name, box.special_use, box.subscribed)
            for box in boxes] + [MailboxEntry(name, None, True, exists=False)
                                 for name in orphans or ()]


async def list_command(s: ImapSession, cmd: c.ListCommand) -> r.Tagged:
    """RFC 9051 6.3.9, RFC 5258, RFC 5819 (STATUS after each selectable name).
    Without LIST-STATUS no message is counted: the names come from one read."""
    statuses = (await s.store.list_mailboxes(s.account) if cmd.status_items is not None
                else [])
    boxes = ([st.mailbox for st in statuses] if cmd.status_items is not None
             else await s.store.mailbox_infos(s.account))
    orphans = (await s.store.orphan_subscriptions(s.account)
               if "SUBSCRIBED" in cmd.selection else [])
    lines = list_responses(_entries(boxes, orphans), cmd.reference, cmd.patterns,
                           selection=cmd.selection, return_subscribed=cmd.return_subscribed,
                           return_special_use=cmd.return_special_use, extended=cmd.extended)
    by_name = {st.mailbox.name: st for st in statuses}
    for line in lines:
        s.send(line)
        status = by_name.get(line.mailbox)
        if cmd.status_items is not None and status is not None:
            recent = (await s.store.recent_count(status.mailbox.id)
                      if "RECENT" in cmd.status_items else 0)
            s.send(r.StatusData(line.mailbox, status_items(s, status, cmd.status_items,
                                                           recent)))
    return r.Tagged(cmd.tag, "OK", "LIST completed")


async def lsub(s: ImapSession, cmd: c.Lsub) -> r.Tagged:
    """RFC 3501 6.3.9."""
    boxes = await s.store.mailbox_infos(s.account)
    orphans = await s.store.orphan_subscriptions(s.account)
    for line in list_responses(_entries(boxes, orphans), cmd.reference,
                               () if cmd.pattern is None else (cmd.pattern,),
                               lsub=True):
        s.send(line)
    return r.Tagged(cmd.tag, "OK", "LSUB completed")


async def namespace(s: ImapSession, cmd: c.Namespace) -> r.Tagged:
    """RFC 2342 5: one personal namespace, no shared ones."""
    s.send(r.NamespaceData((("", SEPARATOR),), None, None))
    return r.Tagged(cmd.tag, "OK", "NAMESPACE completed")


def status_items(s: ImapSession, status: Any, items: tuple[str, ...], recent: int = 0
                 ) -> tuple[tuple[str, int], ...]:
    box = status.mailbox
    values = {
        "MESSAGES": status.messages, "UIDNEXT": box.uidnext, "UIDVALIDITY": box.uidvalidity,
        "UNSEEN": status.unseen, "DELETED": status.deleted, "SIZE": status.size,
        "RECENT": recent, "HIGHESTMODSEQ": box.highestmodseq,
        "APPENDLIMIT": s.services.max_literal_size,
    }
    if "HIGHESTMODSEQ" in items:
        s.condstore = True  # RFC 7162 3.1: a CONDSTORE enabling command
    return tuple((item, values[item]) for item in dict.fromkeys(items))


# STATUS items the shared mailbox state knows (no message sizes there).
_STATE_STATUS = frozenset({"MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ",
                           "APPENDLIMIT"})


async def _status_of_state(s: ImapSession, name: str) -> MailboxStatus | None:
    """STATUS from the shared mailbox state (refreshed by one statement)
    instead of counting the mailbox's messages; None when there is none."""
    states = s.services.states
    found = None if states is None else await states.by_client_name(s.account, name)
    if found is None:
        return None
    state, counters = found
    box = MailboxInfo(state.mailbox_id, counters.account_id, counters.name, None,
                      counters.uidvalidity, counters.uidnext, counters.highestmodseq, False)
    return MailboxStatus(box, len(state), state.unseen_count(), 0, 0)


async def status(s: ImapSession, cmd: c.Status) -> r.Tagged:
    """RFC 9051 6.3.11."""
    found = (await _status_of_state(s, cmd.mailbox) if set(cmd.items) <= _STATE_STATUS
             else None) or await s.store.mailbox_status(s.account, cmd.mailbox)
    # RFC 3501 6.3.10: RECENT counts messages no session has seen yet.
    recent = await s.store.recent_count(found.mailbox.id) if "RECENT" in cmd.items else 0
    s.send(r.StatusData(found.mailbox.name, status_items(s, found, cmd.items, recent)))
    return r.Tagged(cmd.tag, "OK", "STATUS completed")


async def _quota_data(s: ImapSession) -> r.QuotaData:
    quota = await s.store.quota(s.account)
    if quota.limit is None:
        return r.QuotaData(QUOTA_ROOT, ())
    # RFC 9208 5.1: STORAGE is in units of 1024 octets.
    return r.QuotaData(QUOTA_ROOT, (("STORAGE", (quota.used + 1023) // 1024,
                                     quota.limit // 1024),))


async def getquota(s: ImapSession, cmd: c.GetQuota) -> r.Tagged:
    """RFC 9208 4.2: one quota root per account, the empty name."""
    if cmd.root != QUOTA_ROOT:
        return r.Tagged(cmd.tag, "NO", "No such quota root", r.Code("NONEXISTENT"))
    s.send(await _quota_data(s))
    return r.Tagged(cmd.tag, "OK", "GETQUOTA completed")


async def getquotaroot(s: ImapSession, cmd: c.GetQuotaRoot) -> r.Tagged:
    """RFC 9208 4.3."""
    await s.store.mailbox_status(s.account, cmd.mailbox)  # NONEXISTENT when missing
    s.send(r.QuotaRootData(cmd.mailbox, (QUOTA_ROOT,)))
    s.send(await _quota_data(s))
    return r.Tagged(cmd.tag, "OK", "GETQUOTAROOT completed")


async def append(s: ImapSession, cmd: c.Append) -> r.Tagged:
    """RFC 9051 6.3.12; APPENDUID (RFC 4315 3); [TOOBIG] (RFC 7889)."""
    if len(cmd.messages) != 1:
        # MULTIAPPEND (RFC 3502) is not advertised.
        return r.Tagged(cmd.tag, "BAD", "One message per APPEND")
    message = cmd.messages[0]
    if len(message.data) > s.services.max_literal_size:
        return r.Tagged(cmd.tag, "NO", "Message too big", r.Code("TOOBIG"))
    if not message.data:
        return r.Tagged(cmd.tag, "NO", "Empty message", r.Code("CANNOT"))
    when = message.internal_date or datetime.datetime.now(datetime.UTC)
    view = s.view
    # Appended to the selected mailbox of an IMAP4rev1 session: the new
    # message is recent to this session (RFC 3501 2.3.2, 6.3.11), claimed in
    # the APPEND's own transaction; the poll after it reports it.
    claim_in = view.mailbox_id if view is not None and not view.read_only and not s.rev2 else None
    result, first = await s.store.append_claiming(
        s.account, cmd.mailbox, message.data,
        tuple(f for f in message.flags if f.lower() != "\\recent"), when,
        claim_recent_in=claim_in)
    if first is not None and view is not None and s.view is view:
        s.claimed_recent = (view, first, result.uid + 1)
    return r.Tagged(cmd.tag, "OK", "APPEND completed",
                    r.AppendUidCode(result.uidvalidity, SequenceSet.from_numbers([result.uid])))


HANDLERS = {
    c.Enable: (enable, AUTH),
    c.Create: (create, AUTH),
    c.Delete: (delete, AUTH),
    c.Rename: (rename, AUTH),
    c.Subscribe: (subscribe, AUTH),
    c.Unsubscribe: (unsubscribe, AUTH),
    c.ListCommand: (list_command, AUTH),
    c.Lsub: (lsub, AUTH),
    c.Namespace: (namespace, AUTH),
    c.Status: (status, AUTH),
    c.GetQuota: (getquota, AUTH),
    c.GetQuotaRoot: (getquotaroot, AUTH),
    c.Append: (append, AUTH),
}

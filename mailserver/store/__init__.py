"""The mail store: mailboxes, messages, flags, UIDs, MODSEQs, quotas, outbound queue.

Protocol-independent; used by SMTP delivery (as a ``DeliveryTarget``) and IMAP.
"""

from __future__ import annotations

from mailserver.store.model import (
    AccountNotFound,
    AppendResult,
    CannotDeleteInbox,
    Changes,
    CopyResult,
    FlagMode,
    InvalidFlag,
    InvalidMailboxName,
    MailboxExists,
    MailboxHasChildren,
    MailboxInfo,
    MailboxNotFound,
    MailboxStatus,
    MessageMeta,
    MessageState,
    Quota,
    QuotaExceeded,
    Snapshot,
    StoredMessage,
    StoreError,
    StoreResult,
)
from mailserver.store.service import MailStore

__all__ = [
    "AccountNotFound",
    "AppendResult",
    "CannotDeleteInbox",
    "Changes",
    "CopyResult",
    "FlagMode",
    "InvalidFlag",
    "InvalidMailboxName",
    "MailStore",
    "MailboxExists",
    "MailboxHasChildren",
    "MailboxInfo",
    "MailboxNotFound",
    "MailboxStatus",
    "MessageMeta",
    "MessageState",
    "Quota",
    "QuotaExceeded",
    "Snapshot",
    "StoreError",
    "StoreResult",
    "StoredMessage",
]

"""Domain errors -> IMAP ``NO`` with a response code, translated once here
(RFC 9051 7.1, RFC 5530 3, RFC 9208 5.3, RFC 4469 / RFC 4315 [TRYCREATE])."""

from __future__ import annotations

from mailserver.imap.wire import responses as r

# Exception class name -> (response code, text). Names, not classes, so this
# module does not import the store (it translates whatever the store raises).
_BY_NAME: dict[str, tuple[str, str]] = {
    "MailboxNotFound": ("NONEXISTENT", "No such mailbox"),
    "MailboxExists": ("ALREADYEXISTS", "Mailbox already exists"),
    "InvalidMailboxName": ("CANNOT", "Invalid mailbox name"),
    "MailboxHasChildren": ("HASCHILDREN", "Mailbox has inferior hierarchical names"),
    "CannotDeleteInbox": ("CANNOT", "INBOX cannot be deleted"),
    "InvalidFlag": ("CANNOT", "Invalid flag"),
    "QuotaExceeded": ("OVERQUOTA", "Quota exceeded"),
    "AccountNotFound": ("NONEXISTENT", "No such account"),
    "MessageTooBig": ("TOOBIG", "Message too big"),
    "LimitExceeded": ("LIMIT", "Too many"),
    # RFC 3516 4.3: BINARY of a part whose transfer encoding we cannot undo.
    "UnknownTransferEncoding": ("UNKNOWN-CTE", "Cannot decode this part's encoding"),
    # Parsed but not served (EMAILID, THREADID, SAVEDATE; none is advertised).
    "UnsupportedFetchItem": ("CANNOT", "FETCH item not supported"),
}


def translate(tag: str, error: Exception, *, target_mailbox: bool = False) -> r.Tagged | None:
    """The tagged ``NO`` for a store error, or None when it is not one.

    ``target_mailbox``: the missing mailbox is the destination of COPY, MOVE
    or APPEND, which RFC 9051 6.3.12 / 6.4.7 answer with ``[TRYCREATE]``.
    """
    for klass in type(error).__mro__:
        found = _BY_NAME.get(klass.__name__)
        if found is not None:
            code, text = found
            if target_mailbox and code == "NONEXISTENT":
                code = "TRYCREATE"
            return r.Tagged(tag, "NO", text, r.Code(code))
    return None

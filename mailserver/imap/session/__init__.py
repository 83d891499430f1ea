"""The IMAP session layer (RFC 9051 3): the state machine and the command
handlers, grouped by state, talking to the mail store; no SQL, no sockets."""

from mailserver.imap.session.core import ImapSession, SessionServices, State

__all__ = ["ImapSession", "SessionServices", "State"]

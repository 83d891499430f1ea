"""SMTP replies: our own texts, and enhanced status codes for aiosmtpd's (RFC 2034, RFC 3463).

Every reply we produce carries an enhanced status code.  aiosmtpd formats
some replies itself without one ("503 Error: need MAIL command"); since we
advertise ENHANCEDSTATUSCODES, ``enhance`` adds the code on the way out.
RFC 2034 section 3: not on the greeting, not on HELO/EHLO replies, and not
on 334/354 continuation replies -- ``enhance`` only touches final 2xx/4xx/5xx
lines that are not EHLO keyword lines.
"""

from __future__ import annotations

import re

# --- our own replies -----------------------------------------------------------------------
OK = "250 2.0.0 OK"
BYE = "221 2.0.0 Bye"
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
VRFY_UNKNOWN = "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery"

AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_THROTTLED = "454 4.7.0 Too many failed logins, try again later"
AUTH_TEMPFAIL = "454 4.7.0 Temporary authentication failure"

TOO_MANY_ERRORS = "421 4.7.0 Too many errors, closing connection"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections from your address, try again later"
IDLE_TIMEOUT = "421 4.4.2 Idle timeout, closing connection"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"

TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients for this message"
OVER_QUOTA_TEMPORARY = "452 4.2.2 Mailbox full, try again later"
OVER_QUOTA_PERMANENT = "552 5.2.2 Message exceeds the recipient's mailbox quota"
LOCAL_ERROR = "451 4.3.0 Local error in processing, try again later"

UNKNOWN_USER = "550 5.1.1 No such user here"
DISABLED_MAILBOX = "550 5.2.1 Mailbox disabled, not accepting messages"
RELAY_DENIED = "554 5.7.1 Relay access denied: we only accept mail for our own domains"
ADDRESS_LITERAL = "550 5.7.1 Address literals are not accepted"
NULL_RECIPIENT = "501 5.1.3 The null path <> is not a recipient"
NON_ASCII_ADDRESS = "553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter (RFC 6531)"
OUTSIDE_TO_GROUP = ("550 5.7.1 Group addresses accept mail only from members of the school "
                    "(send with your school account)")
EMPTY_GROUP = "550 5.1.1 This group has no active members"
LOCAL_SENDER_ON_MX = ("550 5.7.1 Mail from our own domains must be sent through submission "
                      "with authentication")
NULL_SENDER_SUBMISSION = "550 5.7.1 The null sender is not allowed on submission"
NO_FROM_HEADER = "550 5.6.0 The message has no valid From header field"
BAD_MESSAGE_BYTES = "550 5.6.0 The message contains {what} (RFC 5321 2.3.8, 4.5.2)"


def refused(code: str, text: str) -> str:
    """A refusal with a reason: ``refused("550 5.7.1", "pupils may not ...")``."""
    return f"{code} {_one_line(text)}"


def sender_not_owned(address: str) -> str:
    return refused("550 5.7.1", f"You may not send as <{address}>: it is not one of your "
                                "addresses or a group you own")


def from_not_owned(address: str) -> str:
    return refused("550 5.7.1", f"The From header address <{address}> is not one of your "
                                "addresses or a group you own")


def own_domain_forged(from_domain: str) -> str:
    """Mail on the MX whose From is the school's own domain but not signed by the school."""
    return (f"550 5.7.1 Message rejected: its From is in this school's own domain "
            f"{_one_line(from_domain)} but it is not signed with the school's key; "
            f"mail in the school's name must be sent through authenticated submission")


def dmarc_reject(from_domain: str) -> str:
    """RFC 7489 6.6 / 7372: the From domain's DMARC policy rejects this message."""
    return (f"550 5.7.1 Message rejected: it fails the DMARC policy (p=reject) of "
            f"{_one_line(from_domain)}; it is neither SPF- nor DKIM-authenticated for it")


def refused_by_rules(reason: str) -> str:
    """RFC 5429 2.1: a Sieve reject in the dialogue; the reason is the user's text,
    in ASCII (RFC 5321 4.2: reply text without SMTPUTF8 is ASCII)."""
    text = reason.encode("ascii", "replace").decode("ascii")[:400].strip()
    return refused("550 5.7.1", text or "Message refused by the recipient's rules")


def unknown_command(command: str) -> str:
    return f'500 5.5.2 Command "{_one_line(command)[:20]}" unrecognized'


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)


# --- enhanced codes for aiosmtpd's own replies -----------------------------------------------
_HAS_ENHANCED = re.compile(r"^[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
# Final 2xx replies aiosmtpd formats itself, by their exact opening text.
_SUCCESS_CODES = {
    "250 OK": "2.0.0",
    "221 Bye": "2.0.0",
    "220 Ready to start TLS": "2.0.0",
    "250 Syntax:": "2.0.0",
    "250 Supported commands:": "2.0.0",
    "252 Cannot VRFY": "2.5.0",
}
# Default enhanced code per basic code for aiosmtpd's error replies (RFC 3463 section 3).
_ERROR_CODES = {
    "500": "5.5.2",  # syntax error, command unrecognized, line too long
    "501": "5.5.4",  # invalid parameters
    "502": "5.5.1",  # command not implemented
    "503": "5.5.1",  # bad sequence of commands
    "504": "5.5.4",  # parameter not implemented
    "530": "5.7.0",  # must issue STARTTLS / authentication required
    "538": "5.7.11",
    "552": "5.3.4",  # message too big
    "553": "5.1.3",  # bad address syntax
    "554": "5.7.0",  # refused for lack of security
    "555": "5.5.4",  # MAIL/RCPT parameters not recognized
}


def enhance(reply: str) -> str:
    """Add an RFC 3463 enhanced code to a final reply of aiosmtpd that lacks one."""
    if _HAS_ENHANCED.match(reply) or len(reply) < 4 or reply[3] == "-":
        return reply
    code = reply[:3]
    if code[0] == "2":
        for opening, enhanced in _SUCCESS_CODES.items():
            if reply.startswith(opening):
                return f"{code} {enhanced} {reply[4:]}"
        return reply  # greeting, HELO reply, last EHLO line: never enhanced
    error = _ERROR_CODES.get(code) or (f"{code[0]}.0.0" if code[0] in "45" else None)
    if error is None:
        return reply
    text = reply[4:]
    if text.startswith("Error: "):
        text = text[len("Error: "):]
    return f"{code} {error} {text}"


def reply_code(reply: str) -> int:
    try:
        return int(reply[:3])
    except ValueError:
        return 0


def counts_as_error(reply: str) -> bool:
    """Whether a reply counts toward the connection's error limit.

    Every 5xx (bad syntax, refused recipients, failed logins: what a harvester
    or a password guesser collects) and 454 (throttled logins).  Not 421 (we
    close anyway), 451/452 (our temporary trouble, or RFC 5321 4.5.3.1.10
    "too many recipients", which a well-behaved client handles by sending the
    rest in another transaction) and not 552 (size, once per message).
    """
    code = reply_code(reply)
    return (code >= 500 and code != 552) or code == 454

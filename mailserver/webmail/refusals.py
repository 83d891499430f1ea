"""What a refused recipient or message means, in the reader's language.

The submission and routing layers answer in SMTP's English (the protocol's
language: "550 5.1.1 No such user here", the role policy's verdicts); the
webmail shows people a German (or English) sentence instead.  Reasons not
known here are shown as they are, after a translated "Abgelehnt:".
"""

from __future__ import annotations

import re

from mailserver.webmail.i18n import N_, Translator

# (pattern on the English reason, message; a named group "domain" is filled in)
_KNOWN: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), message) for pattern, message in (
        (r"^not a valid address$", N_("keine gültige Adresse")),
        (r"^no recipient$", N_("keine Empfängeradresse")),
        (r"^you may not send as", N_("Sie dürfen nicht unter dieser Adresse "
                                                   "senden")),
        (r"^the mailbox is full$|mailbox full|exceeds the recipient's mailbox quota",
         N_("das Postfach des Empfängers ist voll")),
        (r"^no such user here$|^no such recipient", N_("diese Adresse gibt es nicht")),
        (r"^this group has no active members$", N_("diese Gruppe hat keine Mitglieder")),
        (r"^mailbox disabled", N_("dieses Postfach nimmt keine Nachrichten an")),
        (r"^pupils may not write to addresses outside the school.*\((?P<domain>[^)]*)\)$",
         N_("Schülerinnen und Schüler dürfen nicht an Adressen außerhalb der Schule und "
            "ihrer Partnerschulen schreiben (%(domain)s)")),
        (r"^parent accounts may not write outside the school \((?P<domain>[^)]*)\)$",
         N_("Eltern dürfen nicht an Adressen außerhalb der Schule schreiben (%(domain)s)")),
        (r"^parents may only contact their own children",
         N_("Eltern dürfen nur ihren eigenen Kindern, den Lehrkräften und dem Schulpersonal "
            "schreiben")),
        (r"^parents may only contact teachers and school staff",
         N_("Eltern dürfen nur den Lehrkräften und dem Schulpersonal schreiben")),
        (r"^only the group's teachers may post to this group",
         N_("nur die Lehrkräfte der Gruppe dürfen an diese Gruppe schreiben")),
        (r"^group addresses accept mail only from members",
         N_("an diese Gruppe dürfen nur Mitglieder der Schule schreiben")),
        (r"^relay access denied", N_("an diese Adresse kann nicht gesendet werden")),
        (r"^address literals are not accepted", N_("keine gültige Adresse")),
        (r"^too many recipients", N_("zu viele Empfänger")),
        (r"try again later", N_("vorübergehend nicht möglich, bitte später noch einmal")),
    ))


def refusal_text(_: Translator, reason: str) -> str:
    """``reason`` from a lower layer as a sentence in the reader's language."""
    for pattern, message in _KNOWN:
        found = pattern.search(reason.strip())
        if found:
            return _(message, **found.groupdict())
    return _("abgelehnt: %(reason)s", reason=reason)

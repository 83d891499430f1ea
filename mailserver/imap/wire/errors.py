"""The one error type of the IMAP wire layer."""

from __future__ import annotations


class ParseError(Exception):
    """A command could not be parsed (RFC 9051 7.1.5: answered with BAD).

    ``tag`` is the command tag when it could be read (the session then sends a
    tagged ``BAD``; otherwise an untagged ``* BAD``). ``text`` is human
    readable and safe to send to the client. ``status`` is ``"BAD"`` for
    syntax errors; a few well-formed but unsupported requests (an unknown
    SEARCH charset, RFC 9051 6.4.4) are ``"NO"`` with a response ``code``
    such as ``"BADCHARSET (US-ASCII UTF-8)"``.
    """

    def __init__(self, text: str, tag: str | None = None, *,
                 status: str = "BAD", code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag
        self.status = status
        self.code = code

    def with_tag(self, tag: str | None) -> ParseError:
        """The same error, carrying ``tag`` when it had none yet."""
        if self.tag is not None or tag is None:
            return self
        return ParseError(self.text, tag, status=self.status, code=self.code)

    def __repr__(self) -> str:
        return f"ParseError({self.text!r}, tag={self.tag!r}, status={self.status!r})"

"""A mail's HTML as a room message's ``formatted_body`` (pure: no I/O).

Client-Server API 11.2.1.7 ("m.room.message msgtypes", HTML): clients render
only a subset of HTML, and "should" strip the rest; a school's server does not
rely on that.  The mail's HTML goes through nh3 (the ammonia sanitiser) with the
spec's list of tags and attributes, less what would load anything: no ``img``
(the spec only allows ``mxc://`` sources, a mail's images are remote or inline
parts), no ``style`` (not in the subset).  Links keep only the spec's schemes
(https, http, ftp, mailto, magnet).  Tables, paragraphs, lists and emphasis stay.
"""

from __future__ import annotations

import re

import nh3

MATRIX_TAGS = frozenset({
    "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol", "sup",
    "sub", "li", "b", "i", "u", "strong", "em", "s", "code", "hr", "br", "div", "table",
    "thead", "tbody", "tr", "th", "td", "caption", "pre", "span", "details", "summary",
})
_ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
_SCHEMES = {"https", "http", "ftp", "mailto", "magnet"}
# Dropped with everything inside them: never text a reader should see.
_DROPPED_WITH_CONTENT = {"script", "style", "title", "head", "noscript", "template", "object",
                         "embed", "iframe", "frame", "frameset", "applet", "form", "button",
                         "select", "textarea", "svg", "math", "audio", "video"}
MAX_FORMATTED = 20_000  # characters: an event is at most 64 KiB (spec: 10.2 "Size limits")
_BLANK = re.compile(r"\s+")


def matrix_html(markup: str) -> str:
    """``markup`` reduced to the Matrix HTML subset; "" when nothing readable is left
    or the result is too long for an event (the plain body stands alone then)."""
    if not markup.strip():
        return ""
    cleaned = nh3.clean(markup, tags=set(MATRIX_TAGS),
                        clean_content_tags=_DROPPED_WITH_CONTENT,
                        attributes={k: set(v) for k, v in _ATTRIBUTES.items()},
                        url_schemes=_SCHEMES, link_rel=None,
                        strip_comments=True)
    cleaned = cleaned.strip()
    if not _BLANK.sub("", re.sub(r"<[^>]*>", "", cleaned)) or len(cleaned) > MAX_FORMATTED:
        return ""
    return cleaned

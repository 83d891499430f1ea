"""Mail HTML made safe to show, and plain text made clickable (pure: no I/O).

HTML goes through nh3 (the ammonia sanitiser) with an allow-list: layout and
text tags only, no script, no style sheet, no form, no frame, no event
handler; ``style`` attributes keep only properties that cannot load anything
or leave their box (no ``url()``-taking property, no ``position``).  Links
open outside the mail (``target=_blank``, ``rel="noopener noreferrer"``).

Images: ``cid:`` references (RFC 2392) become URLs of this webmail that serve
the message's own part; remote images are dropped until the reader allows
them (a tracking pixel tells the sender when and where the mail was read);
``data:`` raster images stay, they load nothing.  The page that frames the
result adds its own CSP on top (``html_view``), so a sanitiser gap alone
still loads nothing remote and runs nothing.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import nh3
from markupsafe import Markup, escape

_TAGS = {
    "a", "abbr", "b", "bdi", "bdo", "blockquote", "br", "caption", "center", "cite", "code",
    "col", "colgroup", "dd", "del", "div", "dl", "dt", "em", "figcaption", "figure", "font",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p",
    "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "tt", "u", "ul", "wbr",
}
# Dropped with everything inside them (the rest of unknown tags keep their text).
_DROPPED_WITH_CONTENT = {"script", "style", "title", "head", "noscript", "template", "object",
                         "embed", "iframe", "frame", "frameset", "applet", "form", "button",
                         "select", "textarea", "svg", "math", "audio", "video"}
_CELL = {"align", "valign", "width", "height", "bgcolor", "colspan", "rowspan", "nowrap"}
_ATTRIBUTES = {
    "*": {"style", "dir", "lang", "title", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height", "border", "hspace", "vspace"},
    "font": {"color", "face", "size"},
    "table": {"width", "height", "border", "cellpadding", "cellspacing", "bgcolor", "summary"},
    "td": _CELL, "th": _CELL | {"scope"}, "tr": {"valign", "bgcolor", "height"},
    "tbody": {"valign"}, "thead": {"valign"}, "tfoot": {"valign"},
    "col": {"width", "span"}, "colgroup": {"width", "span"},
    "ol": {"start", "type"}, "ul": {"type"}, "hr": {"width", "size", "noshade"},
    "blockquote": {"cite"},
}
# CSS properties that take no url() and cannot place anything outside the mail's box.
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "font-variant", "text-align", "text-decoration", "text-indent",
    "text-transform", "line-height", "letter-spacing", "word-spacing", "white-space",
    "vertical-align", "direction", "display", "width", "height", "max-width", "min-width",
    "max-height", "min-height", "margin", "margin-top", "margin-right", "margin-bottom",
    "margin-left", "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-style", "border-width", "border-radius", "border-collapse", "border-spacing",
    "table-layout", "float", "clear", "overflow", "word-break", "overflow-wrap",
}
_LINK_SCHEMES = ("http", "https", "mailto", "tel")
_DATA_IMAGE = re.compile(r"data:image/(png|gif|jpeg|webp);base64,[A-Za-z0-9+/=\s]*\Z",
                         re.IGNORECASE)


@dataclass(frozen=True)
class SafeHtml:
    """The sanitised HTML and how many remote images it held back."""

    html: str
    blocked_images: int


def _scheme(url: str) -> str:
    head = url.strip().split(":", 1)
    return head[0].lower() if len(head) == 2 else ""


def sanitise_html(markup: str, *, inline_url: Callable[[str], str],
                  remote_images: bool) -> SafeHtml:
    """Allow-listed HTML of a mail body.

    ``inline_url(content_id)`` gives the URL that serves the message part with
    that Content-ID (RFC 2392 ``cid:``); ``remote_images`` keeps http(s) image
    sources, else they are removed and counted.
    """
    blocked = 0
    inline_prefix = inline_url("")

    def attribute(tag: str, name: str, value: str) -> str | None:
        nonlocal blocked
        if name == "href":
            return value if _scheme(value) in _LINK_SCHEMES else None
        if tag == "img" and name == "src":
            scheme = _scheme(value)
            if scheme == "cid":
                return inline_url(urllib.parse.unquote(value.strip()[4:]).strip("<>"))
            if scheme == "data":
                return value if _DATA_IMAGE.match(value.strip()) else None
            if scheme in ("http", "https"):
                if remote_images:
                    return value
                blocked += 1
            return None
        return value

    cleaned = nh3.clean(
        markup, tags=_TAGS, clean_content_tags=_DROPPED_WITH_CONTENT, attributes=_ATTRIBUTES,
        attribute_filter=attribute, link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        url_schemes={"http", "https", "mailto", "tel", "cid", "data"},
        url_relative=lambda url: url if url.startswith(inline_prefix) else None,
        filter_style_properties=_STYLE_PROPERTIES, strip_comments=True)
    return SafeHtml(cleaned, blocked)


# Plain-text links: the scheme or "www." up to whitespace or an angle bracket;
# trailing punctuation belongs to the sentence, not to the address.
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


def linkify(text: str) -> Markup:
    """Plain text, escaped, with its web addresses as links opened outside
    (``rel="noopener noreferrer"``)."""
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0)
        trimmed = url.rstrip(_TRAILING)
        # A closing bracket that the URL opened itself stays (Wikipedia links).
        while trimmed != url and url[len(trimmed)] == ")" and trimmed.count("(") > \
                trimmed.count(")"):
            trimmed += ")"
        end = match.start() + len(trimmed)
        target = trimmed if "://" in trimmed else f"https://{trimmed}"
        out.append(str(escape(text[last:match.start()])))
        out.append(f'<a href="{escape(target)}" target="_blank" '
                   f'rel="noopener noreferrer">{escape(trimmed)}</a>')
        last = end
    out.append(str(escape(text[last:])))
    return Markup("".join(out))

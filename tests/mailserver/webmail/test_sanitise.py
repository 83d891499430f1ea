"""Mail HTML sanitising and plain-text links (pure functions)."""

from __future__ import annotations

import html.parser
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from mailserver.webmail.sanitise import linkify, sanitise_html
from tests.support.properties import examples


def _inline(content_id: str) -> str:
    return f"/message/inline?box=INBOX&uid=7&cid={content_id}"


def clean(markup: str, images: bool = False) -> str:
    return sanitise_html(markup, inline_url=_inline, remote_images=images).html


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, dict(attrs)))


def tags_of(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(markup)
    return parser.seen


def test_scripts_handlers_forms_and_styles_are_removed() -> None:
    out = clean('<html><head><title>T</title><style>p{color:red}</style>'
                '<script>document.title="pwned"</script></head>'
                '<body onload="x()"><p onclick="y()" style="color:blue;position:fixed">Hallo</p>'
                '<img src=x onerror="alert(1)"><form action="/logout"><input name=a>'
                '<button>Los</button></form><iframe src="https://evil.example"></iframe>'
                '<svg><script>1</script></svg><a href="javascript:alert(1)">j</a></body></html>')
    assert "Hallo" in out
    assert "script" not in out and "pwned" not in out and "color:red" not in out
    for tag, attrs in tags_of(out):
        assert tag not in {"form", "input", "button", "iframe", "svg", "style", "script"}
        assert not any(name.startswith("on") for name in attrs)
        assert "javascript" not in (attrs.get("href") or "")
    assert '<p style="color:blue">' in out  # position:fixed could cover the page


def test_remote_images_blocked_until_allowed_cid_and_data_kept() -> None:
    markup = ('<img src="https://tracker.example/p.gif"><img src="HTTP://t.example/a.png">'
              '<img src="cid:logo@schule.test"><img src="data:image/png;base64,iVBORw0K">'
              '<img src="data:text/html;base64,PHNjcmlwdD4="><p style="background:url(https://x)">')
    blocked = sanitise_html(markup, inline_url=_inline, remote_images=False)
    assert blocked.blocked_images == 2
    sources = [attrs.get("src") for tag, attrs in tags_of(blocked.html) if tag == "img"]
    assert sources == [None, None, _inline("logo@schule.test"),
                       "data:image/png;base64,iVBORw0K", None]
    assert "url(" not in blocked.html
    allowed = sanitise_html(markup, inline_url=_inline, remote_images=True)
    assert allowed.blocked_images == 0
    assert "https://tracker.example/p.gif" in allowed.html


def test_links_open_outside_without_referrer() -> None:
    out = clean('<a href="https://elternbrief.example/a?b=1&amp;c=2">Brief</a>'
                '<a href="mailto:sekretariat@schule.test">Mail</a><a href="/logout">x</a>'
                '<a href="cid:x">c</a>')
    links = [attrs for tag, attrs in tags_of(out) if tag == "a"]
    assert [a.get("href") for a in links] == ["https://elternbrief.example/a?b=1&c=2",
                                               "mailto:sekretariat@schule.test", None, None]
    for attrs in links:
        assert attrs["rel"] == "noopener noreferrer" and attrs["target"] == "_blank"


def test_relative_sources_cannot_reach_the_webmail() -> None:
    out = clean('<img src="/mail?box=INBOX"><img src="//evil.example/x">'
                '<img src="/message/inline?box=INBOX&uid=7&cid=../x">')
    sources = [attrs.get("src") for tag, attrs in tags_of(out) if tag == "img"]
    assert sources[:2] == [None, None]


_DANGEROUS = re.compile(r"<\s*(script|style|iframe|form|object|embed|svg)|<[^>]*\son\w+\s*=",
                        re.IGNORECASE)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.sampled_from([
    "<script>", "</script>", "<img src=x onerror=alert(1)>", "<a href='javascript:x'>",
    "<style>", "<svg onload=1>", "<iframe>", "<form>", "<!--", "-->", "<p style='x:url(y)'>",
    "<![CDATA[", "]]>", "<", ">", "\"", "'", "=", "on", "error", "java", "script:", "&lt;",
    "<scr<script>ipt>", "<math><mi xlink:href='javascript:1'>", "<img src='cid:a'>",
    "<img src='https://t.example/x'>", "text", "\x00", "<base href='https://x'>",
]), max_size=30).map("".join) | st.text(max_size=200))
def test_nothing_dangerous_survives(markup: str) -> None:
    out = sanitise_html(markup, inline_url=_inline, remote_images=False)
    assert not _DANGEROUS.search(out.html), out.html
    assert "https://t.example" not in out.html
    for tag, attrs in tags_of(out.html):
        assert not any(name.startswith("on") for name in attrs)
        assert not any("javascript" in (value or "").lower() for value in attrs.values())
        assert tag not in {"base", "meta", "link"}


def test_plain_text_links_are_clickable_and_escaped() -> None:
    out = str(linkify("Siehe https://de.wikipedia.org/wiki/Foo_(Bar). Oder www.schule.test, "
                      "<b>fett</b> & \"zitiert\""))
    assert ('<a href="https://de.wikipedia.org/wiki/Foo_(Bar)" target="_blank" '
            'rel="noopener noreferrer">https://de.wikipedia.org/wiki/Foo_(Bar)</a>. ') in out
    assert '<a href="https://www.schule.test" target="_blank"' in out
    assert "&lt;b&gt;fett&lt;/b&gt; &amp; &#34;zitiert&#34;" in out


@given(st.text(max_size=300))
def test_linkify_keeps_the_text(text: str) -> None:
    out = str(linkify(text))
    shown = re.sub(r"<a [^>]*>|</a>", "", out)
    assert "<" not in shown
    assert html.unescape(shown) == text

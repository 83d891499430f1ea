"""The mail's HTML in the Matrix subset (messenger.mail_html)."""

from __future__ import annotations

import html.parser

from hypothesis import given
from hypothesis import strategies as st

from messenger.mail_html import MATRIX_TAGS, MAX_FORMATTED, matrix_html


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def _tags(markup: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Tags()
    parser.feed(markup)
    return parser.found


def test_scripts_styles_images_and_handlers_go_text_stays() -> None:
    out = matrix_html("<html><head><title>T</title><style>p{}</style></head><body>"
                      "<p style='color:red' onclick=x>Hallo <b>Welt</b></p>"
                      "<script>alert(1)</script><img src=x onerror=alert(1)>"
                      "<a href='javascript:alert(1)'>a</a><a href='mailto:x@y'>m</a>"
                      "<iframe src=https://x></iframe><ol start=3><li>drei</li></ol>")
    assert out == ('<p>Hallo <b>Welt</b></p><a>a</a><a href="mailto:x@y">m</a>'
                   '<ol start="3"><li>drei</li></ol>')


def test_nothing_readable_or_too_long_gives_nothing() -> None:
    assert matrix_html("<script>x</script><img src=y>") == ""
    assert matrix_html("   ") == ""
    assert matrix_html("<p>" + "x" * MAX_FORMATTED + "</p>") == ""


_PIECES = st.sampled_from([
    "<script>", "</script>", "<p>", "</p>", "<img src=x onerror=y>", "<a href='javascript:1'>",
    "<a href='https://e'>", "</a>", "<style>", "<svg onload=1>", "<b>", "<div style='x'>",
    "<table><tr><td>", "text", "&lt;", "<!--", "-->", "<iframe>", "\"", "'", "<", ">",
    "<object data=x>", "<details><summary>", "<span data-x=1>", "<form action=x>",
])


@given(st.lists(_PIECES, max_size=40))
def test_only_the_subset_survives(pieces: list[str]) -> None:
    out = matrix_html("".join(pieces))
    for tag, attrs in _tags(out):
        assert tag in MATRIX_TAGS
        for name, value in attrs:
            assert (tag, name) in {("a", "href"), ("ol", "start")}
            assert not (value or "").lower().startswith("javascript")

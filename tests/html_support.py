"""Parsed HTML for assertions: tests name the element and attribute they mean, so a
reordered attribute or a new class does not break them, and a string that merely appears
somewhere else in the page (a script, another element) does not satisfy them.

Parsed with the standard library's parser through BeautifulSoup (a Wagtail dependency);
selectors are CSS (soupsieve).
"""

from __future__ import annotations

from bs4 import BeautifulSoup, Tag


def parse(source) -> BeautifulSoup | Tag:
    """A response, bytes, str or an element already parsed."""
    if isinstance(source, Tag):
        return source
    if hasattr(source, "content"):
        source = source.content
    if isinstance(source, bytes):
        source = source.decode()
    return BeautifulSoup(source, "html.parser")


def select(source, selector: str) -> list[Tag]:
    return parse(source).select(selector)


def one(source, selector: str) -> Tag:
    """The one element matching ``selector`` (fails when there are none or several)."""
    found = select(source, selector)
    assert len(found) == 1, f"{len(found)} elements match {selector!r}"
    return found[0]


def text(source, selector: str | None = None) -> str:
    """Visible text (no scripts or styles), whitespace collapsed; of one element when a
    selector is given."""
    node = one(source, selector) if selector else parse(source)
    node = BeautifulSoup(str(node), "html.parser")
    for hidden in node.select("script, style, template"):
        hidden.decompose()
    return " ".join(node.get_text(" ").split())


def classes(element: Tag) -> set[str]:
    return set(element.get("class") or ())


def hrefs(source) -> list[str]:
    """Every ``href`` in document order."""
    return [a["href"] for a in select(source, "[href]")]

"""The registry of the book's chapters and what every page shares.

What each chapter of the book shows, computed from a bundle: ``{glue name: value}``.

A page function reads a :class:`~spineseg_core.report.bundle.Bundle` and returns every value
its chapter glues: text (``{glue:text}``), a matplotlib figure or an
:class:`~spineseg_core.report.tables.HTMLTable` (``{glue:figure}`` with a caption). The chapter
itself is prose around those names, so the analysis is here, tested
(``tests/test_pages.py`` builds every page from a fake bundle and from none, and checks that
each name a chapter uses is given). Missing results give a placeholder that names the file,
never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spineseg_core.fingerprint import REPO
from spineseg_core.report.bundle import Bundle
from spineseg_core.report.tables import HTMLTable

Page = dict[str, Any]
"""What a page function returns: every glue name of its chapter with its value."""

BOOK_DATA = REPO / "book" / "data"
"""Facts about MRSpineSeg the book shows (counted over the MRSpineSeg release)."""


class Missing:
    """A figure or table a page cannot make: the chapter shows which file it needs."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"Missing({self.what!r})"


class MarkdownText(str):
    """Text a chapter glues with ``{glue:md}`name:myst` `` (glued as Markdown): a command in
    backticks shows as code and keeps its ``--``, which Sphinx's smart quotes turn into a dash
    in plain text (``{glue:text}``)."""


PAGES: dict[str, Callable[[Bundle], Page]] = {}


def page(name: str) -> Callable[[Callable[[Bundle], Page]], Callable[[Bundle], Page]]:
    """Register the page function of chapter ``book/<name>.md``."""
    def register(fn: Callable[[Bundle], Page]) -> Callable[[Bundle], Page]:
        PAGES[name] = fn
        return fn
    return register


def build_page(name: str, bundle: Bundle) -> Page:
    """The values of chapter ``name``; an unknown chapter is a ``KeyError`` naming them all."""
    if name not in PAGES:
        raise KeyError(f"no page function for chapter {name!r}; known: {sorted(PAGES)}")
    return PAGES[name](bundle)


def glue_names(chapter_text: str) -> set[str]:
    """The glue names a chapter's Markdown uses (``{glue:text}`name` ``, ``{glue:md}`name` ``,
    ``{glue:figure} name`` and ``{glue:md} name``, a block of MyST whose own exhibits a page
    gives only when it has them)."""
    import re

    inline = re.findall(r"\{glue:(?:text|any|md)\}`([^`:]+)", chapter_text)
    blocks = re.findall(r"^```\{glue:(?:figure|md)\}\s+(\S+)", chapter_text, flags=re.M)
    return set(inline) | set(blocks)


def markdown_glue_names(chapter_text: str) -> set[str]:
    """The names a chapter glues as Markdown (``{glue:md}``, inline or as a block): their
    values must be :class:`MarkdownText`, and only theirs."""
    import re

    return (set(re.findall(r"\{glue:md\}`([^`:]+)", chapter_text))
            | set(re.findall(r"^```\{glue:md\}\s+(\S+)", chapter_text, flags=re.M)))


def placeholder(what: str) -> HTMLTable:
    """What a figure or table that cannot be made shows: a line naming the missing file (text,
    not an image, so nothing is left without a caption's alt text)."""
    import html

    return HTMLTable(f'<p class="spineseg-missing">Missing from this results bundle: '
                     f"{html.escape(what)}.</p>")


def as_glue_value(value: Any) -> Any:
    """What to glue for a page value (:func:`placeholder` for :class:`Missing`, a Markdown
    display object for :class:`MarkdownText`)."""
    if isinstance(value, Missing):
        return placeholder(value.what)
    if isinstance(value, MarkdownText):
        from IPython.display import Markdown

        return Markdown(str(value))
    return value

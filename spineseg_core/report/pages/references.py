"""The references chapter: how to cite the study (from ``CITATION.cff``) and the paper it
re-runs; the bibliography itself is ``book/references.bib``.

The page function of ``book/references.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

from pathlib import Path

from spineseg_core.fingerprint import REPO
from spineseg_core.report.bundle import Bundle, and_join
from spineseg_core.report.pages.base import MarkdownText, Page, page

CITATION = REPO / "CITATION.cff"


def _names(authors: list[dict]) -> str:
    names = [a.get("name") or " ".join(filter(None, (a.get("given-names"),
                                                     a.get("family-names"))))
             for a in authors]
    return and_join(names)


def how_to_cite(cff: Path = CITATION) -> str:
    """The study's citation and the paper's, in Markdown, from the Citation File Format file
    (its title, authors, version and first reference)."""
    import yaml

    if not cff.is_file():
        return f"`{cff.name}` is missing from this checkout."
    meta = yaml.safe_load(cff.read_text())
    study = (f"{_names(meta.get('authors', []))}. *{meta['title']}*, version "
             f"{meta.get('version', '?')}, {meta.get('license', '')} licence.")
    out = [f"**How to cite.** {meta.get('message', '').strip()}", "", f"- {study}"]
    for ref in meta.get("references", [])[:1]:
        venue = ref.get("collection-title") or ref.get("journal") or ""
        doi = ref.get("doi")
        out.append(f"- {_names(ref.get('authors', []))}. *{ref['title']}*. {venue}, "
                   f"{ref.get('year', '')}" + (f". [doi:{doi}](https://doi.org/{doi})" if doi
                                              else "") + ".")
    return "\n".join(out)


@page("references")
def references_page(b: Bundle) -> Page:
    return {"ref_cite": MarkdownText(how_to_cite())}

"""The methods chapter: the one place that describes how the runs were made (data, protocol,
machines) and every deviation from the paper; the other chapters link to it.

The page function of ``book/methods.md`` (:mod:`spineseg_core.report.pages`)."""

from __future__ import annotations

from spineseg_core.report.bundle import Bundle
from spineseg_core.report.pages.base import MarkdownText, Page, page
from spineseg_core.report.tables import Column, table_html


@page("methods")
def methods_page(b: Bundle) -> Page:
    from spineseg_core.errors import DataError
    from spineseg_core.report.deviations import deviations_table
    from spineseg_core.report.facts import read_setup, setup_markdown
    from spineseg_core.report.pages.convergence import plateau_bundle
    from spineseg_core.study.budget_raise import BUDGET_FILE

    seed = plateau_bundle(b)
    setup = read_setup(b.folder) if b.has_bundle() else None
    try:  # the context study's own runs (another batch, other models), when the bundle has them
        context = setup_markdown(read_setup(b.folder, "context")) if setup else None
    except DataError:
        context = None
    return {
        "m_setup": MarkdownText(setup_markdown(setup) if setup else
                                "No results bundle was found: nothing has been run yet."),
        "m_context_setup": MarkdownText(context or "This bundle holds no run of the context "
                                        "study."),
        "deviations": table_html(deviations_table(setup, seed.csv("plateau.csv"),
                                                  seed.json(BUDGET_FILE)), [
            Column("aspect", "Aspect"), Column("paper", "The paper"),
            Column("ours", "This study"), Column("reason", "Why")]),
    }

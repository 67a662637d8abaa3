"""What each chapter of the book shows, computed from a bundle: one module per chapter.

:mod:`~spineseg_core.report.pages.base` holds the registry (:data:`PAGES`, the :func:`page`
decorator, :func:`build_page`) and what every page shares; each chapter ``book/<name>.md`` has
its page function in the module of the same name here, registered when this package is
imported. The book's helper (``book/bookkit.py``) and the tests use only this package's names.
"""

from spineseg_core.report.pages import (  # noqa: F401
                                        context,
                                        convergence,
                                        dataset,
                                        efficiency,
                                        intro,
                                        levels,
                                        losses,
                                        methods,
                                        per_class,
                                        references,
                                        reproducibility,
                                        results,
                                        visual,
)
from spineseg_core.report.pages.base import (
                                        PAGES,
                                        MarkdownText,
                                        Missing,
                                        Page,
                                        as_glue_value,
                                        build_page,
                                        glue_names,
                                        markdown_glue_names,
                                        page,
                                        placeholder,
)
from spineseg_core.report.pages.losses import loss_runs_sentence
from spineseg_core.report.pages.reproducibility import studies_text

__all__ = ["PAGES", "MarkdownText", "Missing", "Page", "as_glue_value", "build_page",
           "glue_names", "loss_runs_sentence", "markdown_glue_names", "page", "placeholder",
           "studies_text"]

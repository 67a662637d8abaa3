"""The book's Sphinx hooks, so that ``jupyter-book build book``, typed as it is, shows the
results as they are now.

- Every build re-reads every chapter. Sphinx re-reads only the sources whose text changed, so a
  second build after the results changed would keep the pages from before; the chapters are
  small and only read the results bundle, so all of them are executed again
  (``execute_notebooks: force`` in ``_config.yml`` makes re-reading mean re-executing).
- The chapters' kernel is ``book/_jupyter/kernels/python3``: the usual ipykernel command with
  its own log at error level, so a build does not print ipykernel's warning that its local
  sockets are unencrypted (a kernel started by the build on this machine, for this build).
- Tables are numbered as tables. Every exhibit of the book is a ``{glue:figure}`` (a figure
  node), whatever it holds; one whose label starts with ``tbl-`` becomes a :class:`TableFigure`,
  which Sphinx numbers in the table sequence, so captions read "Table 4.2" and "Figure 4.1"
  (numbered per chapter: ``numbered: 1`` in ``_toc.yml``), and ``{numref}`` writes the same
  number wherever a chapter refers to one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from docutils import nodes

TABLE_LABEL = "tbl-"
"""The label prefix of an exhibit that is a table (``:name: tbl-...``); figures use ``fig-``."""

JUPYTER_DIR = Path(__file__).resolve().parent.parent / "_jupyter"


def every_chapter(app: Any, env: Any, added: set[str], changed: set[str],
                  removed: set[str]) -> list[str]:
    """Sphinx's ``env-get-outdated``: every known chapter is re-read, not only changed ones."""
    return sorted(set(env.found_docs) - set(removed) - set(added) - set(changed))


class TableFigure(nodes.figure):
    """A glued exhibit that is a table: rendered as a figure, numbered as a table."""


def _visit_table_figure(self: Any, node: TableFigure) -> None:
    self.visit_figure(node)


def _depart_table_figure(self: Any, node: TableFigure) -> None:
    self.depart_figure(node)


def tables_as_tables(app: Any, doctree: nodes.document) -> None:
    """Sphinx's ``doctree-read``: each figure labelled ``tbl-...`` becomes a
    :class:`TableFigure` with the same attributes and children, before numbers are given (and
    the document's id map points at it, as ``{numref}`` looks the label up there)."""
    for figure in list(doctree.findall(nodes.figure)):
        if type(figure) is nodes.figure and any(i.startswith(TABLE_LABEL) for i in figure["ids"]):
            table = TableFigure(figure.rawsource, *figure.children, **figure.attributes)
            table.source, table.line = figure.source, figure.line
            figure.replace_self(table)
            for node_id in table["ids"]:
                doctree.ids[node_id] = table


def setup(app: Any) -> dict[str, Any]:
    app.connect("env-get-outdated", every_chapter)
    app.add_enumerable_node(TableFigure, "table",
                            html=(_visit_table_figure, _depart_table_figure))
    app.connect("doctree-read", tables_as_tables, priority=400)
    paths = [str(JUPYTER_DIR), *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    return {"parallel_read_safe": True, "parallel_write_safe": True}

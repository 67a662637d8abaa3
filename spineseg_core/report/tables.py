"""Tables as a reader sees them: named columns with units, no index, no ``NaN``, no ``…``.

A chapter describes each column once (:class:`Column`: where it comes from, its header with its
unit, how a value is written) and :func:`table_html` renders the frame as one HTML table
wrapped to scroll sideways when it is wider than the page. A missing value is a dash, and a
footnote under the table says what a dash means. pandas' ``Styler`` does the HTML; this module
only chooses what it shows.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd

DASH = "–"
"""What a missing value shows (an en dash), explained by the table's footnote."""

DEFAULT_DASH_NOTE = "not available for this row"


class Kind(StrEnum):
    """How a column's values are written."""

    PERCENT = "percent"  # a fraction in [0, 1] shown as percent
    NUMBER = "number"  # a number as it is, with ``digits`` decimals
    INTEGER = "integer"  # thousands separated
    TEXT = "text"


@dataclass(frozen=True)
class Column:
    """One column of a shown table: ``key`` in the frame, its ``header`` (with the unit),
    how it is written, and an optional ``write`` that overrides the kind (``row -> text``)."""

    key: str
    header: str
    kind: Kind = Kind.TEXT
    digits: int = 1
    write: Callable[[pd.Series], str] | None = None


def is_missing(value: Any) -> bool:
    """``None``, ``NaN`` and ``pd.NA`` (and empty text) are missing."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def cell_text(value: Any, kind: Kind, digits: int = 1) -> str:
    """``value`` written as ``kind``; :data:`DASH` when missing."""
    if is_missing(value):
        return DASH
    if kind is Kind.PERCENT:
        return f"{100 * float(value):.{digits}f}"
    if kind is Kind.NUMBER:
        return f"{float(value):.{digits}f}"
    if kind is Kind.INTEGER:
        return f"{int(round(float(value))):,}"
    return str(value)


def shown_frame(df: pd.DataFrame, columns: Sequence[Column]) -> pd.DataFrame:
    """The frame as text, one column per :class:`Column` under its header, in order."""
    missing = [c.key for c in columns if c.write is None and c.key not in df.columns]
    if missing:
        raise KeyError(f"table columns {missing} are not in the frame ({list(df.columns)})")
    out = {}
    for col in columns:
        if col.write is not None:
            out[col.header] = [col.write(row) for _, row in df.iterrows()]
        else:
            out[col.header] = [cell_text(v, col.kind, col.digits) for v in df[col.key]]
    return pd.DataFrame(out, index=range(len(df)))


class HTMLTable:
    """Rendered HTML that Jupyter shows and ``glue`` stores (``text/html``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


def table_html(df: pd.DataFrame, columns: Sequence[Column], *, notes: Sequence[str] = (),
               dash_note: str = DEFAULT_DASH_NOTE) -> HTMLTable:
    """``df`` as an HTML table without index, scrolling sideways when wider than the page.

    ``notes`` are footnotes shown under it; a dash note is added when a cell is missing.
    """
    shown = shown_frame(df, columns)
    footnotes = list(notes)
    if (shown == DASH).any().any():
        footnotes.insert(0, f"{DASH}: {dash_note}.")
    styler = shown.style.hide(axis="index").set_table_attributes('class="spineseg-table"')
    body = styler.to_html()
    foot = "".join(f'<p class="spineseg-table-note">{html.escape(n)}</p>' for n in footnotes)
    return HTMLTable(f'<div class="spineseg-table-wrap" style="overflow-x:auto">{body}</div>'
                     f"{foot}")


def fold_constant(df: pd.DataFrame, columns: Sequence[Column]) -> tuple[list[Column], list[str]]:
    """The columns of ``columns`` that vary over the rows of ``df``, and one note naming each
    that does not ("Size (px): 128"): a value every row shares is said once under the table
    instead of filling a column, so the table keeps to the page's width. A table of one row,
    whose every column is constant, keeps them all."""
    if len(df) < 2:
        return list(columns), []
    shown = shown_frame(df, columns)
    kept, same = [], []
    for col in columns:
        values = shown[col.header]
        if col.key != columns[0].key and values.nunique() == 1 and values.iloc[0] != DASH:
            same.append(f"{col.header}: {values.iloc[0]}")
        else:
            kept.append(col)
    return kept, ([f"Every row: {'; '.join(same)}."] if same else [])


def columns_for(df: pd.DataFrame, headers: dict[str, str], digits: int = 2) -> list[Column]:
    """Columns for the keys of ``headers`` present in ``df`` (in that order), numbers with
    ``digits`` decimals (integers without), text as it is."""
    cols = []
    for key, header in headers.items():
        if key not in df:
            continue
        series = df[key]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            cols.append(Column(key, header))
        elif pd.api.types.is_integer_dtype(series):
            cols.append(Column(key, header, Kind.INTEGER))
        else:
            cols.append(Column(key, header, Kind.NUMBER, digits))
    return cols


@dataclass(frozen=True)
class ColourScale:
    """How a heatmap table colours a value: matplotlib's ``cmap`` from ``vmin`` to ``vmax``
    (a value outside is clipped to the nearest end)."""

    vmin: float = 0.0
    vmax: float = 100.0
    cmap: str = "viridis"


PERCENT_SCALE = ColourScale()
"""Percent from 0 (dark) to 100 (yellow), the book's one scale for Dice and shares."""


def cell_colours(value: float, scale: ColourScale = PERCENT_SCALE) -> tuple[str, str]:
    """A heatmap cell's background (``value``'s colour on ``scale``, as ``#rrggbb``; a value
    outside the scale takes the colour of its nearer end, as matplotlib's colormaps do) and the
    text colour that reads on it: black on a light colour, white on a dark one, split at the
    relative luminance (WCAG 2) where both contrast equally."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    rgb = colormaps[scale.cmap]((float(value) - scale.vmin) / (scale.vmax - scale.vmin))[:3]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return to_hex(rgb), ("#000" if luminance > 0.179 else "#fff")


def heatmap_html(values: pd.DataFrame, tooltips: pd.DataFrame, *,
                 scale: ColourScale = PERCENT_SCALE,
                 write: Callable[[float], str] = lambda v: f"{v:.0f}",
                 missing_text: str = DASH, column_titles: dict[Any, str] | None = None,
                 row_header: str = "", title: str = "", notes: Sequence[str] = (),
                 dash_note: str = DEFAULT_DASH_NOTE) -> HTMLTable:
    """``values`` (rows and columns as labelled, numbers or NaN) as a heatmap that is an HTML
    table: each cell's background is its value's colour on ``scale`` and its text black or
    white, whichever reads on it (:func:`cell_colours`), both inline; a missing cell is left
    uncoloured and shows ``missing_text``. ``tooltips`` (same labels) is each cell's ``title``:
    hovering shows the values, offline and without a script. ``column_titles`` gives a column
    header a ``title`` too (its full name beside an abbreviated header); the book's CSS
    (``spineseg-heat``) sets the headers upright and narrow, so 19 or 21 columns fit the page.

    Written here rather than by pandas' ``Styler``: its one CSS rule and id per cell make a
    page of six 19 x 21 heatmaps half a megabyte; inline styles keep it a third of that."""
    if not values.index.equals(tooltips.index) or not values.columns.equals(tooltips.columns):
        raise ValueError("heatmap: the tooltips' rows and columns are not the values'")

    def attr(text: object) -> str:
        return html.escape(str(text), quote=True)

    titles = column_titles or {}
    head = "".join(f'<th class="col_heading" title="{attr(titles[c])}">{attr(c)}</th>'
                   if c in titles else f'<th class="col_heading">{attr(c)}</th>'
                   for c in values.columns)
    rows = []
    for r in values.index:
        cells = []
        for c in values.columns:
            v, tip = values.at[r, c], attr(tooltips.at[r, c])
            if is_missing(v):
                cells.append(f'<td title="{tip}">{attr(missing_text)}</td>')
            else:
                background, colour = cell_colours(v, scale)
                cells.append(f'<td style="background:{background};color:{colour}" '
                             f'title="{tip}">{attr(write(float(v)))}</td>')
        rows.append(f'<tr><th class="row_heading">{attr(r)}</th>{"".join(cells)}</tr>')
    table = (f'<table class="spineseg-table spineseg-heat"><thead><tr>'
             f'<th class="blank">{attr(row_header)}</th>{head}</tr></thead>'
             f'<tbody>{"".join(rows)}</tbody></table>')
    footnotes = list(notes)
    if missing_text == DASH and values.isna().any().any():
        footnotes.insert(0, f"{DASH}: {dash_note}.")
    top = f'<p class="spineseg-heat-title">{html.escape(title)}</p>' if title else ""
    foot = "".join(f'<p class="spineseg-table-note">{html.escape(n)}</p>' for n in footnotes)
    return HTMLTable(f'<div class="spineseg-heat-wrap">{top}'
                     f'<div class="spineseg-table-wrap" style="overflow-x:auto">{table}</div>'
                     f"{foot}</div>")

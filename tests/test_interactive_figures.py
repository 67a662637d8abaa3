"""The book's explorable exhibits without a script: heatmaps as HTML tables whose cells carry
their values as a ``title`` (hover), and the accuracy-against-cost scatter as inline SVG whose
points carry theirs as ``<title>``. Hand-made frames, so every tooltip and colour is known."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from matplotlib import colormaps
from matplotlib.colors import to_hex

from spineseg_core.labels import label_by_name
from spineseg_core.report.tables import DASH, ColourScale, cell_colours, heatmap_html

VIRIDIS_0, VIRIDIS_1 = to_hex(colormaps["viridis"](0.0)), to_hex(colormaps["viridis"](1.0))


def _cells(html: str) -> list[dict]:
    """Every data cell of every heatmap table: its row and column header, text, title, and
    inline background and text colour (None when uncoloured)."""
    soup = BeautifulSoup(html, "html.parser")
    out = []
    for table in soup.find_all("table", class_="spineseg-heat"):
        columns = [th.get_text() for th in table.thead.find_all("th")[1:]]
        for tr in table.tbody.find_all("tr"):
            row = tr.th.get_text()
            for column, td in zip(columns, tr.find_all("td"), strict=True):
                style = dict(p.split(":", 1) for p in (td.get("style") or "").split(";") if p)
                out.append({"row": row, "column": column, "text": td.get_text(),
                            "title": td.get("title"), "background": style.get("background"),
                            "colour": style.get("color")})
    return out


def test_heatmap_cell_carries_its_tooltip_and_its_values_colour():
    values = pd.DataFrame({"L3": [0.0, 100.0], "T9": [50.0, np.nan]}, index=["U-Net", "A<B"])
    tips = pd.DataFrame({"L3": ['a "quoted" & <b>', "b"], "T9": ["c", "d"]}, index=values.index)
    out = heatmap_html(values, tips, column_titles={"L3": "vertebra L3"}, row_header="Model")
    cells = {(c["row"], c["column"]): c for c in _cells(out.text)}
    assert len(cells) == 4  # one cell, and one tooltip, per value
    # the tooltip is the text given, escaped in the attribute and read back intact
    assert [cells[k]["title"] for k in sorted(cells)] == ["b", "d", 'a "quoted" & <b>', "c"]
    # colours follow values: the scale's ends, the middle; the text reads on each
    assert (cells["U-Net", "L3"]["background"], cells["U-Net", "L3"]["colour"]) == (VIRIDIS_0,
                                                                                   "#fff")
    assert (cells["A<B", "L3"]["background"], cells["A<B", "L3"]["colour"]) == (VIRIDIS_1, "#000")
    assert cells["U-Net", "T9"]["background"] == to_hex(colormaps["viridis"](0.5))
    assert [cells[k]["text"] for k in (("U-Net", "L3"), ("A<B", "L3"), ("U-Net", "T9"))] == \
        ["0", "100", "50"]
    # a missing value is uncoloured, shows a dash and the footnote says what a dash means
    assert cells["A<B", "T9"]["background"] is None and cells["A<B", "T9"]["text"] == DASH
    assert f"{DASH}: not available for this row." in out.text
    soup = BeautifulSoup(out.text, "html.parser")
    assert soup.find("th", title="vertebra L3").get_text() == "L3"
    assert soup.find("th", class_="blank").get_text() == "Model"
    assert "<script" not in out.text


def test_heatmap_colour_is_clipped_to_its_scale_and_text_contrasts():
    scale = ColourScale(vmin=10, vmax=20, cmap="Greys")
    assert cell_colours(-5, scale) == cell_colours(10, scale) == ("#ffffff", "#000")
    assert cell_colours(99, scale) == cell_colours(20, scale) == ("#000000", "#fff")


def test_heatmap_refuses_tooltips_of_other_cells():
    values = pd.DataFrame({"a": [1.0]}, index=["m"])
    with pytest.raises(ValueError, match="tooltips' rows and columns"):
        heatmap_html(values, pd.DataFrame({"b": ["x"]}, index=["m"]))


def test_per_class_heatmap_tooltips_give_ours_and_the_papers():
    from spineseg_core.report.pages.per_class import per_class_heatmaps

    paper = pd.DataFrame({"L3": [85.0, 80.0, 70.0], "T9": [95.2, 95.2, 95.2]},
                         index=["U-Net", "DANet", "MiniSeg"])
    ours = pd.DataFrame({"L3": [81.24, 60.0], "T9": [np.nan, 12.0]}, index=["U-Net", "MiniSeg"])
    out = per_class_heatmaps(ours, paper)
    cells = _cells(out.text)
    assert len(cells) == 2 * paper.size  # the paper's heatmap and ours, a tooltip per cell
    mine = {(c["row"], c["column"]): c for c in cells[paper.size:]}
    theirs = {(c["row"], c["column"]): c for c in cells[:paper.size]}
    assert mine["U-Net", "L3"]["title"] == "U-Net, L3: 81.2 % Dice (paper 85.0 %)"
    assert mine["U-Net", "L3"]["text"] == "81"
    assert mine["U-Net", "T9"]["title"] == ("U-Net, T9: never scored in this model's runs "
                                            "(paper 95.2 %)")
    assert mine["DANet", "L3"]["title"] == "DANet, L3: not run in this study (paper 80.0 %)"
    assert mine["DANet", "L3"]["text"] == DASH and mine["DANet", "L3"]["background"] is None
    assert theirs["MiniSeg", "T9"]["title"] == ("MiniSeg, T9: the paper's 95.2 % Dice "
                                                "(ours: 12.0 % Dice)")
    # one colour scale for both: equal values, equal colours
    assert theirs["DANet", "L3"]["background"] == cell_colours(80.0)[0]
    assert mine["MiniSeg", "L3"]["background"] == cell_colours(60.0)[0]
    header = BeautifulSoup(out.text, "html.parser").find("th", string="L3")
    assert header["title"] == label_by_name("L3").long_name


def test_level_confusion_heatmap_tooltips_give_share_and_counts():
    """U-Net as predicted: of 4 instances of L3, 3 answered L3 and 1 L4 (the next vertebra
    up); L4's 2 instances are missed. Levels no subject has are uncoloured, blank cells."""
    from spineseg_core.levels.anatomy import LEVELS
    from spineseg_core.report.level_figures import ANSWERS, confusion_heatmaps

    l3, l4 = label_by_name("L3").value, label_by_name("L4").value
    conf = pd.DataFrame({"model": "unet", "display_name": "U-Net", "stage": "predicted",
                         "class_value": [l3, l3, l4], "answer": [l3, l4, 0], "n": [3, 1, 2]})
    out = confusion_heatmaps(conf, ["unet"], stages=("predicted",))
    cells = {(c["row"], c["column"]): c for c in _cells(str(out))}
    assert len(cells) == len(LEVELS) * len(ANSWERS)
    assert cells["L3", "L3"]["title"] == "U-Net, predicted: L3 as L3 in 75.0 % (3 of 4)"
    assert cells["L3", "L4"]["title"] == "U-Net, predicted: L3 as L4 in 25.0 % (1 of 4)"
    assert cells["L4", "bg"]["title"] == "U-Net, predicted: L4 missed in 100.0 % (2 of 2)"
    assert cells["L3", "S"]["title"] == "U-Net, predicted: L3 as S in 0.0 % (0 of 4)"
    assert (cells["L3", "L3"]["text"], cells["L3", "S"]["text"]) == ("75", "")  # < 1 %: blank
    assert cells["L3", "L3"]["background"] == cell_colours(75.0)[0]
    assert cells["L3", "S"]["background"] == VIRIDIS_0
    assert cells["T9", "T9"]["title"] == "U-Net, predicted: no subject has T9 in its reference"
    assert cells["T9", "T9"]["background"] is None and cells["T9", "T9"]["text"] == ""


def _cost_frame() -> pd.DataFrame:
    return pd.DataFrame({"display_name": ["U-Net", "MiniSeg", "DANet"],
                         "family": ["U-Net family", "backbone models", "backbone models"],
                         "dice_mean": [0.5904, 0.131, 0.4], "params_m": [13.4, 0.08241, 47.5],
                         "gmacs_880": [365.4, 2.049, 1234.4]})


def test_cost_scatter_svg_points_carry_model_dice_gmacs_and_parameters():
    import matplotlib.pyplot as plt

    from spineseg_core.report.figures import cost_scatter_html, point_gid

    before = set(plt.get_fignums())  # other tests may leave figures open
    out = str(cost_scatter_html(_cost_frame()))
    assert set(plt.get_fignums()) == before  # the figure is closed once drawn
    soup = BeautifulSoup(out, "html.parser")
    svg = soup.find("svg")
    assert svg["role"] == "img" and svg["aria-label"] and svg.get("viewbox")
    assert svg.get("width") is None  # scales to the page (CSS), no fixed size
    want = ["U-Net: 59.0 % Dice, 365 GMACs at 880 px, 13.4 M parameters",
            "MiniSeg: 13.1 % Dice, 2.05 GMACs at 880 px, 0.0824 M parameters",
            "DANet: 40.0 % Dice, 1234 GMACs at 880 px, 47.5 M parameters"]
    for panel in (0, 1):
        for k, text in enumerate(want):
            point = svg.find("g", id=point_gid(panel, k))
            assert point.title.get_text() == text
            assert point.find("path") is not None or point.find("use") is not None  # the marker
    assert len(svg.find_all("title")) == 6  # one per point, none elsewhere
    assert "<?xml" not in out and "<!DOCTYPE" not in out and "<script" not in out
    # the same data give the same bytes (fixed ids)
    assert str(cost_scatter_html(_cost_frame())) == out


def test_svg_titles_name_an_element_that_is_not_there():
    import matplotlib.pyplot as plt

    from spineseg_core.report.figures import svg_with_titles

    fig, ax = plt.subplots()
    ax.plot([1], [1], gid="here")
    with pytest.raises(ValueError, match="'gone'"):
        svg_with_titles(fig, {"here": "x", "gone": "y"}, "a plot")
    assert re.search(r'<g id="here"[^>]*><title>x</title>',
                     svg_with_titles(fig, {"here": "x"}, "a plot"))
    plt.close(fig)

"""The chapter checks of the browser test (tests/book_checks.py) on hand-made pages, and the
list of chapters they cover (the book's table of contents)."""

from __future__ import annotations

from pathlib import Path

from book_checks import page_problems, toc_chapters

REPO = Path(__file__).resolve().parent.parent

GOOD = """<html><body><nav><img src="logo.png"></nav><article class="bd-article">
<h1>Results</h1>
<figure><img src="_images/a1.png" alt="Dice per model, U-Net highest">
<figcaption><p>Figure 1. Test Dice of each model.</p></figcaption></figure>
<table><tr><th>Model</th><th>Dice (%)</th></tr><tr><td>U-Net</td><td>76.88 ± 0.52</td></tr>
<tr><td>PSPNet</td><td>70.10 (n = 1)</td></tr><tr><td>DANet</td><td>71.2 ± 0.05</td></tr>
<tr><td>EMANet</td><td>—</td></tr><tr><td>FPR</td><td>0.25 ± 0.00</td></tr></table>
<p>Nan Zhou, ± 0.50 and ± 10.0 are fine; over 3 seeds 0.25 ± 0.00 is a rounded spread.</p>
</article></body></html>"""

BAD = """<html><body><article class="bd-article"><h1>Results</h1>
<img src="_images/abc.png" alt="_images/abc.png">
<figure><img src="_images/def.png"><figcaption> </figcaption></figure>
<h2>Per model <a class="headerlink" href="#x">#</a></h2>
<table><tr><td>...</td><td>NaN</td><td>PSPNet</td><td>76.88 ± 0.00</td></tr>
<tr><td>U-Net</td><td>80.1 ± 0.00</td></tr></table>
<p>The text goes on… and ± 0 here (n = 1)</p><pre>Traceback (most recent call last):</pre>
</article></body></html>"""


def test_a_publishable_page_has_no_problem():
    # The logo outside the article is not a figure; a zero spread over 3 seeds is not n = 1.
    assert page_problems(GOOD, single_seed=("PSPNet",)) == []


def test_every_problem_is_named_with_where_it_is():
    problems = page_problems(BAD, single_seed=("PSPNet",))
    assert [p.split(": ")[0] for p in problems] == [
        "figure 1/2 (in 'Results')", "figure 1/2 (in 'Results')", "figure 2/2 (in 'Results')",
        "figure 2/2 (in 'Results')", '1 x "…" (truncated text)',
        "1 x a table cell '...' (a truncated table)", '1 x "NaN"',
        '2 x "± 0.00" for one seed (n = 1 must read "n = 1")', '"Traceback" on the page']
    assert problems[:4] == ["figure 1/2 (in 'Results'): alt text is a path ('_images/abc.png')",
                            "figure 1/2 (in 'Results'): no caption",
                            "figure 2/2 (in 'Results'): no alt text",
                            "figure 2/2 (in 'Results'): no caption"]
    assert "goes on… and" in problems[4] and "NaN PSPNet" in problems[6]
    # PSPNet's row and the "n = 1" sentence; U-Net's row is not of one seed.
    assert "PSPNet 76.88 ± 0.00" in problems[7] and "and ± 0 here (n = 1)" in problems[7]
    assert "80.1" not in problems[7]


def test_stale_text_and_missing_files_are_named(tmp_path):
    """Words true only while the study ran, placeholders, a notes file's section and a
    repository path that does not exist; paths that exist, and results/ paths, pass."""
    from book_checks import stale_problems

    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/rerun.sh").write_text("")
    text = ("Three seeds are planned. So far 2 models. Not available yet: x. TODO. "
            "See dataset.md section 1, scripts/rerun.sh, scripts/gone.sh and "
            "results/cpu/models.csv.")
    problems = stale_problems(text, tmp_path)
    assert [p.split(": ")[0] for p in problems] == [
        '1 x "planned"', '1 x "so far"', '1 x "not available yet"', "1 x a placeholder",
        '1 x a "<file>.md section N" reference', "1 x a file that does not exist"]
    assert problems[-1].endswith("scripts/gone.sh")
    assert stale_problems("Seeds 0 to 2 ran; scripts/rerun.sh remakes them.", tmp_path) == []


def test_toc_chapters_walks_parts_chapters_and_sections(tmp_path):
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: One\n    chapters:\n"
        "      - file: a\n        sections:\n          - file: a1\n      - file: b\n"
        "  - caption: Two\n    chapters:\n      - file: c\n")
    assert toc_chapters(tmp_path) == ["intro", "a", "a1", "b", "c"]


def test_the_book_checks_cover_every_chapter_of_the_toc():
    """The browser test's pages are the table of contents' (the context chapter among them),
    and each has its minimum of figures and tables; the chromium-free alt-text check of
    tests/test_pages.py reads the same list."""
    import test_book

    chapters = toc_chapters(REPO / "book")
    assert "context" in chapters and "levels" in chapters
    assert chapters == test_book.CHAPTERS
    assert set(test_book.MINIMA) == set(chapters)
    assert all((REPO / "book" / f"{c}.md").is_file() for c in chapters)


def _chapter(number: str | None, *exhibits: str) -> str:
    title = f'<span class="section-number">{number}. </span>' if number else ""
    return (f'<html><body><article class="bd-article"><h1>{title}Chapter</h1>{"".join(exhibits)}'
            "</article></body></html>")


def _exhibit(number: str, caption: str, body: str = "<table><tr><td>1</td></tr></table>") -> str:
    head = f'<span class="caption-number">{number} </span>' if number else ""
    return (f"<figure>{body}<figcaption><p>{head}<span class=\"caption-text\">{caption}</span>"
            "</p></figcaption></figure>")


def test_numbering_by_chapter_passes():
    """Tables and figures numbered by chapter, each once; a box on the unnumbered first page
    may hold a table."""
    from book_checks import numbering_problems

    pages = {"intro": _chapter(None, '<div class="admonition"><table><tr><td>x</td></tr>'
                                     "</table></div>"),
             "results": _chapter("4", _exhibit("Figure 4.1", "Ranks", '<img alt="ranks">'),
                                 _exhibit("Table 4.1", "Overlap"), _exhibit("Table 4.2", "Errors")),
             "per_class": _chapter("5", _exhibit("Table 5.1", "The paper's Table 1 against"))}
    assert numbering_problems(pages) == []


def test_numbering_breaks_are_named():
    """A caption without a number, a number outside its chapter, a hand-written number left in
    the caption, a number given twice, and a table that is no numbered exhibit."""
    from book_checks import numbering_problems

    pages = {"results": _chapter("4", _exhibit("", "Table 1a. Overlap"),
                                 _exhibit("Table 5.1", "Errors"),
                                 _exhibit("Table 4.1", "Table D1. Classes"),
                                 "<table><tr><td>loose</td></tr></table>"),
             "per_class": _chapter("5", _exhibit("Table 5.1", "Dice per vertebra"),
                                   _exhibit("Fig. 3", "Heatmaps", '<img alt="heatmaps">'))}
    assert numbering_problems(pages) == [
        "results: exhibit 1 ('Table 1a. Overlap'): no number in the scheme",
        "results: exhibit 2 ('Table 5.1 Errors'): Table 5.1 is not numbered in its chapter (4)",
        "results: exhibit 3 ('Table 4.1 Table D1. Classes'): a hand-written number after "
        "Table 4.1",
        "results: 1 x a table outside a numbered exhibit",
        "per_class: exhibit 1 ('Table 5.1 Dice per vertebra'): Table 5.1 is also results's",
        "per_class: exhibit 2 ('Fig. 3 Heatmaps'): no number in the scheme"]


def test_explorable_exhibits_need_their_hover_values_and_a_caption():
    """A heatmap cell without its ``title`` and an inline SVG plot without a description or a
    caption are named; with them the page passes."""
    heat = ('<figure><table class="spineseg-heat"><tr><th>U-Net</th><td title="U-Net, L3: 81.2 % '
            'Dice (paper 85.0 %)">81</td><td{}>40</td></tr></table>'
            "<figcaption><p>Dice per structure.</p></figcaption></figure>")
    svg = '<figure><svg role="img"{}><g id="p"><title>U-Net</title></g></svg>{}</figure>'
    page = '<html><body><article class="bd-article"><h1>Cost</h1>{}{}</article></body></html>'
    good = page.format(heat.format(' title="x"'),
                       svg.format(' aria-label="Dice against cost"',
                                  "<figcaption><p>Accuracy against cost.</p></figcaption>"))
    assert page_problems(good) == []
    bad = page.format(heat.format(""), svg.format("", ""))
    assert page_problems(bad) == [
        "1 x a heatmap cell without its values on hover (title)",
        "inline SVG 1 (in 'Cost'): no aria-label", "inline SVG 1 (in 'Cost'): no caption"]


def test_width_probe_is_added_once_and_its_finding_read_back():
    from book_checks import too_wide, with_width_probe

    page = "<html><body><p>x</p></body></html>"
    probed = with_width_probe(page, ".a, .b")
    assert probed.count("<script>") == 1 and '".a, .b"' in probed
    assert probed.index("<script>") > probed.index("<p>x</p>")
    assert too_wide(page) is None  # the probe did not run
    assert too_wide('<html><body data-too-wide="[]"></body></html>') == []
    assert too_wide("<html><body data-too-wide='[\"900 px in 700 px: Model\"]'></body></html>") \
        == ["900 px in 700 px: Model"]

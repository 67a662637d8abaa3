"""The book, built from a fixture results bundle and opened in a real browser (chromium).

The fixture runs are fake (tests/fake_runs.py); only their files' shapes matter here. Two
models have two seeds and one has a single seed, as in a study still running, so the pages show
both a spread and "n = 1"; a context group of three models has its own level tables. The book
is copied into a temporary folder and built there, so the repository's _build is untouched.
Every page of ``book/_toc.yml`` is then checked as a reader would meet it (tests/book_checks.py):
captions and real alt text, no "…", "NaN", "Traceback", "n/a" or "± 0.00" — on the built HTML
itself (no browser needed), and on the DOM chromium renders when chromium is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from book_checks import numbering_problems, page_problems, toc_chapters
from fake_bench import write_fake_bench_monai, write_fake_step_changes, write_fake_step_settings
from fake_plateau import write_plateau_bundle
from fake_runs import make_fake_study, write_fake_efficiency, write_fake_loss_variants
from spineseg_core.levels.study import bundle_folder, level_study
from spineseg_core.models import model_info
from spineseg_core.study.aggregate import aggregate

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHAPTERS: list[str] = toc_chapters(REPO / "book")
"""Every page of the book, from its table of contents."""
MINIMA: dict[str, tuple[int, int]] = {
    "intro": (0, 1), "methods": (0, 1), "dataset": (2, 2), "losses": (1, 1), "results": (1, 1),
    "per_class": (0, 3), "efficiency": (1, 4), "visual": (1, 0), "convergence": (3, 4),
    "claims": (1, 1), "levels": (1, 4), "context": (1, 4), "reproducibility": (0, 3), "references": (0, 0)}
"""Chapter -> (min figures drawn: ``<img>`` or inline ``<svg role="img">``, min ``<table>``)
its page must hold with the fixture's bundle (the per-class and level-confusion heatmaps are
tables);
tests/test_book_checks.py checks that it names every chapter of the table of contents."""
DRAWN = r'<img\b|<svg\b[^>]*\brole="img"'
"""A figure drawn on the page: an image, or an inline SVG plot (the accuracy-against-cost one)."""
MODELS = ("unet", "deeplabv3plus", "miniseg")
SINGLE_SEED = ("miniseg",)  # n = 1: its spread is not measured
CONTEXT_MODELS = ("unet", "unet_25d3", "unet3d")
NA_ALLOWED = ("efficiency",)
"""Chapters that may show "n/a": the efficiency chapter for the benchmark the fixture lacks."""

pytestmark = [pytest.mark.slow]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(apt-get install chromium) - the browser test needs it")


def _build(tmp: Path, results: Path) -> subprocess.CompletedProcess:
    site = tmp / "site"
    site.mkdir()
    shutil.copy(REPO / "_config.yml", site)
    shutil.copytree(REPO / "book", site / "book",
                    ignore=shutil.ignore_patterns("_build", "_generated"))
    env = {**os.environ, "SPINESEG_RESULTS_DIR": str(results), "SPINESEG_BOOK_PROFILE": "cpu"}
    jb = Path(sys.executable).with_name("jupyter-book")
    return subprocess.run([str(jb), "build", "book", "-W", "-n", "--keep-going"], cwd=site,
                          env=env, capture_output=True, text=True, timeout=900)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}",
                           *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("book")
    several = tuple(m for m in MODELS if m not in SINGLE_SEED)
    make_fake_study(tmp / "runs", profile="cpu", models=several, seeds=(0, 1),
                    variants={"context": {"models": CONTEXT_MODELS}})
    make_fake_study(tmp / "runs", profile="cpu", models=SINGLE_SEED, seeds=(0,), losses=())
    write_fake_efficiency(tmp / "results/cpu/efficiency.csv", MODELS)
    write_fake_loss_variants(tmp / "results/cpu/loss_variants.csv")
    write_fake_step_settings(tmp / "results/cpu/step_settings.csv")
    write_fake_step_changes(tmp / "results/cpu/step_changes.csv")
    write_fake_bench_monai(tmp / "results/cpu/bench_monai.csv")
    write_plateau_bundle(tmp / "results/plateau")
    shutil.copy(REPO / "results/phantom_vs_real.csv", tmp / "results/phantom_vs_real.csv")
    aggregate("cpu", tmp / "runs", tmp / "results/cpu", n_boot=100)
    level_study(tmp / "runs", tmp / "results/cpu/levels", "cpu", n_boot=100)
    level_study(tmp / "runs", tmp / "results/cpu" / bundle_folder("cpu-context"), "cpu-context",
                n_boot=100)
    proc = _build(tmp, tmp / "results")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return tmp / "site/_build/html"


def _text(dom: str) -> str:
    """The text of a page's article (no scripts, navigation or tags)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(dom, "html.parser")
    return (soup.select_one("article.bd-article") or soup).get_text(" ")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_built_page_reads_as_a_publication(site, chapter):
    """The checks of tests/book_checks.py on each page's built HTML, without a browser: what
    the page says before any script runs (figures, captions, alt texts, tables, text)."""
    page = site / f"{chapter}.html"
    assert page.is_file(), f"{chapter}.html was not built"
    dom = page.read_text()
    one_seed = tuple(model_info(m).display_name for m in SINGLE_SEED)
    assert page_problems(dom, one_seed, REPO) == [], chapter
    assert "n/a" not in _text(dom) or chapter in NA_ALLOWED
    want_img, want_table = MINIMA[chapter]
    assert len(re.findall(DRAWN, dom)) >= want_img, chapter
    assert len(re.findall(r"<table\b", dom)) >= want_table, chapter


def test_every_exhibit_is_numbered_once_in_its_chapter(site):
    """One numbering scheme over the built book: every table and figure is "Table N.k" or
    "Figure N.k" with N its chapter's number, each number once, no table outside one."""
    pages = {chapter: (site / f"{chapter}.html").read_text() for chapter in CHAPTERS}
    assert numbering_problems(pages) == []


@pytest.fixture(scope="module")
def doms(site, tmp_path_factory) -> dict[str, str]:
    """Each chapter's DOM as chromium renders it, read once for all the checks."""
    tmp = tmp_path_factory.mktemp("dom")
    return {chapter: _chromium(tmp, "--dump-dom", (site / f"{chapter}.html").as_uri()).stdout
            for chapter in CHAPTERS if (site / f"{chapter}.html").is_file()}


@needs_chromium
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_dom(doms, chapter):
    assert chapter in doms, f"{chapter}.html was not built"
    dom = doms[chapter]
    assert "<h1" in dom, dom[:500]
    n_img = len(re.findall(DRAWN, dom))
    n_table = len(re.findall(r"<table\b", dom))
    want_img, want_table = MINIMA[chapter]
    assert n_img >= want_img and n_table >= want_table, (chapter, n_img, n_table)
    assert "n/a" not in _text(dom) or chapter in NA_ALLOWED
    assert "Traceback" not in dom


@needs_chromium
def test_every_chapter_reads_as_a_publication(doms):
    """Captions and real alt text on every figure; no "…", "NaN", "Traceback" or "± 0.00"."""
    assert set(doms) == set(CHAPTERS)
    one_seed = tuple(model_info(m).display_name for m in SINGLE_SEED)
    problems = {chapter: page_problems(dom, one_seed, REPO) for chapter, dom in doms.items()}
    failing = {chapter: found for chapter, found in problems.items() if found}
    report = "\n".join(f"{chapter}.html:\n  - " + "\n  - ".join(found)
                       for chapter, found in failing.items())
    assert not failing, f"{len(failing)} of {len(doms)} chapters are not publishable:\n{report}"


@needs_chromium
def test_results_bundle_is_downloadable(site, doms):
    """The reproducibility chapter links the zip of results/cpu/, and it holds the bundle."""
    import zipfile

    links = re.findall(r'<a [^>]*href="([^"]*spineseg-results-cpu\.zip)"', doms["reproducibility"])
    assert len(links) == 1, links
    archive = site / links[0]
    bundle = site.parents[2] / "results/cpu"
    expected = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == [f"results/cpu/{rel}" for rel in expected]
        assert zf.read("results/cpu/models.csv") == (bundle / "models.csv").read_bytes()


@needs_chromium
def test_glued_numbers_match_results(site, tmp_path):
    import pandas as pd

    models = pd.read_csv(site.parents[2] / "results/cpu/models.csv")
    best = models.loc[models.dice_mean.idxmax()]
    text = re.sub(r"<[^>]+>", "", _chromium(tmp_path, "--dump-dom",
                                             (site / "intro.html").as_uri()).stdout)
    assert f"ours is {best.display_name} at {100 * best.dice_mean:.1f} %" in re.sub(r"\s+", " ",
                                                                                  text)
    assert "phantom" in text


@needs_chromium
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_tables_and_exhibits_fit_1280px(site, tmp_path, chapter):
    """Every table, heatmap and inline SVG plot, dropdowns opened, fits a 1280 px window
    without sideways scrolling: a copy of the built page beside it, with
    book_checks.WIDTH_PROBE."""
    from book_checks import EVERY_EXHIBIT, too_wide, with_width_probe

    page = site / f"{chapter}.html"
    probe = site / f"_width_{chapter}.html"
    probe.write_text(with_width_probe(page.read_text(), EVERY_EXHIBIT))
    try:
        dom = _chromium(tmp_path, "--window-size=1280,1000", "--virtual-time-budget=5000",
                        "--dump-dom", probe.as_uri()).stdout
    finally:
        probe.unlink()
    assert too_wide(dom) == [], chapter


@needs_chromium
def test_screenshot(site, tmp_path):
    shot = tmp_path / "results.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000",
              (site / "results.html").as_uri())
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_book_without_results_degrades(tmp_path):
    """No results at all: the book still builds, and says what is missing."""
    proc = _build(tmp_path, tmp_path / "empty")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = (tmp_path / "site/_build/html/results.html").read_text()
    assert "Missing from this results bundle: models.csv" in html and "Traceback" not in html

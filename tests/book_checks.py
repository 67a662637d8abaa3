"""What a published chapter must not show, checked on its rendered HTML (tests/test_book.py).

``page_problems`` reads one page's DOM (as chromium's ``--dump-dom`` gives it) and returns one
line per problem, naming what is wrong and where, so that a failing test lists every chapter
and everything it lacks at once.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from bs4 import BeautifulSoup

PATH_LIKE = re.compile(r"[\\/]|\.(png|jpe?g|svg|gif|webp)$", re.IGNORECASE)
"""Alt text that is a file path or name (what a notebook output gets by default)."""

ZERO_SPREAD = re.compile(r"±\s*0(?:\.0+)?(?![\d.]*[1-9])")
"""``± 0``, ``± 0.0``, ``± 0.00``...: a spread of zero, what one seed shows if printed as a
standard deviation (the book writes ``n = 1`` instead)."""

ONE_SEED = re.compile(r"\bn\s*=\s*1\b")

NAN = re.compile(r"\bNaN\b")

STALE = {
    '"planned"': re.compile(r"\bplanned\b", re.IGNORECASE),
    '"so far"': re.compile(r"\bso far\b", re.IGNORECASE),
    '"not available yet"': re.compile(r"not available yet", re.IGNORECASE),
    "a placeholder": re.compile(r"\b(?:TODO|TBD|FIXME|XXX)\b|\{glue:|lorem ipsum"),
}
"""Text that was true only while the study was under way, or never meant for a reader."""

REPO_FILE = re.compile(
    r"(?<![\w/.<-])((?:scripts|docs|spineseg_core|notebooks|book|tests|\.github|\.ci)/[\w./-]*\w"
    r"|(?:README|CONTRIBUTING)\.md|CITATION\.cff|Makefile|pyproject\.toml|constraints\.txt)"
    r"(?![\w<>*])")
"""A path into the repository's own files, as a page names one (results/ and runs/ are the
bundle's and a user's, which a fixture bundle need not have)."""

SECTION_OF_FILE = re.compile(r"\b[\w-]+\.md section \d+")
""""dataset.md section 1": a section of a notes file the reader cannot open."""


def toc_chapters(book: Path) -> list[str]:
    """Every page of the book in its order, as ``book/_toc.yml`` lists them (the root, then
    each ``file`` of its chapters, parts and sections): what the checks must cover, so that a
    chapter added to the book is checked without being added to a hand list."""
    toc = yaml.safe_load((Path(book) / "_toc.yml").read_text())
    found = [str(toc["root"])]

    def walk(entries: list[dict]) -> None:
        for entry in entries or []:
            if "file" in entry:
                found.append(str(entry["file"]))
            for key in ("chapters", "sections", "parts"):
                walk(entry.get(key) or [])

    walk(toc.get("parts") or [])
    walk(toc.get("chapters") or [])
    return found


def _context(text: str, match: re.Match[str], width: int = 30) -> str:
    start, end = max(match.start() - width, 0), match.end() + width
    return " ".join(text[start:end].split())


def _found(what: str, pattern: re.Pattern[str], text: str) -> list[str]:
    hits = list(pattern.finditer(text))
    if not hits:
        return []
    shown = "; ".join(f"'{_context(text, m)}'" for m in hits[:2])
    return [f"{len(hits)} x {what}: {shown}"]


def _section(element) -> str:
    """The title of the section an element is in (its nearest heading before it)."""
    heading = element.find_previous(["h1", "h2", "h3", "h4"])
    if heading is None:
        return "top"
    return " ".join(heading.get_text(" ").replace("#", " ").replace("¶", " ").split())


def _caption_problem(element, name: str) -> list[str]:
    figure = element.find_parent("figure")
    caption = figure.find("figcaption") if figure else None
    return [] if caption is not None and caption.get_text(strip=True) else [f"{name}: no caption"]


def _figure_problems(article) -> list[str]:
    """Every image has alt text that is not a path, and a caption."""
    problems = []
    images = article.find_all("img")
    for i, img in enumerate(images, start=1):
        name = f"figure {i}/{len(images)} (in '{_section(img)[:40]}')"
        alt = (img.get("alt") or "").strip()
        if not alt:
            problems.append(f"{name}: no alt text")
        elif PATH_LIKE.search(alt) or alt == img.get("src"):
            problems.append(f"{name}: alt text is a path ('{alt[:40]}')")
        problems += _caption_problem(img, name)
    return problems


def _hover_problems(article) -> list[str]:
    """The explorable exhibits without a script: every cell of a heatmap table
    (``spineseg-heat``) carries its values as a ``title``, and an inline SVG drawn as an image
    (``role="img"``) has a description and sits in a captioned figure."""
    problems = []
    bare = [td for td in article.select("table.spineseg-heat td") if not td.get("title")]
    if bare:
        problems.append(f"{len(bare)} x a heatmap cell without its values on hover (title)")
    for k, svg in enumerate(article.select('svg[role="img"]'), start=1):
        name = f"inline SVG {k} (in '{_section(svg)[:40]}')"
        if not (svg.get("aria-label") or "").strip():
            problems.append(f"{name}: no aria-label")
        problems += _caption_problem(svg, name)
    return problems


WIDTH_PROBE = """<script>
window.addEventListener("load", () => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const wide = [...document.querySelectorAll(%s)]
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => `${e.scrollWidth} px in ${e.clientWidth} px: ${e.textContent.trim().slice(0, 40)}`);
  document.body.setAttribute("data-too-wide", JSON.stringify(wide));
});
</script>"""
"""A script added to a copy of a built page, for chromium: it opens every dropdown and writes
into ``<body data-too-wide>`` each element of the selector (``%s``) whose content is wider
than the element, i.e. scrolls sideways (:func:`too_wide` reads it from the dumped DOM)."""

HOVER_EXHIBITS = ".spineseg-heat-grid, .spineseg-heat-wrap .spineseg-table-wrap, .spineseg-svg"
"""The explorable exhibits (heatmap tables, inline SVG plots), which must fit the page."""

EVERY_EXHIBIT = f"table, .spineseg-table-wrap, {HOVER_EXHIBITS}"
"""Every table of a page and the explorable exhibits: none may scroll sideways at 1280 px."""


def with_width_probe(page_html: str, selector: str = HOVER_EXHIBITS) -> str:
    """``page_html`` with :data:`WIDTH_PROBE` for ``selector`` before its ``</body>``."""
    import json

    return page_html.replace("</body>", WIDTH_PROBE % json.dumps(selector) + "</body>", 1)


def too_wide(dom: str) -> list[str] | None:
    """What :data:`WIDTH_PROBE` found too wide in a dumped DOM; None when it did not run."""
    import json

    body = BeautifulSoup(dom, "html.parser").body
    found = body.get("data-too-wide") if body else None
    return None if found is None else json.loads(found)


def _zero_spread_of_one_seed(article, single_seed: tuple[str, ...]) -> list[str]:
    """"± 0.00" in a table row or a paragraph about a one-seed result: one that names a model
    of ``single_seed`` or says "n = 1"."""
    found = []
    for block in article.find_all(["tr", "p", "li", "dd", "figcaption"]):
        if block.find(["tr", "p", "li", "dd"]):  # the innermost blocks only
            continue
        text = " ".join(block.get_text(" ").split())
        match = ZERO_SPREAD.search(text)
        if match and (ONE_SEED.search(text) or any(name in text for name in single_seed)):
            found.append(f"'{_context(text, match)}'")
    if not found:
        return []
    return [f'{len(found)} x "± 0.00" for one seed (n = 1 must read "n = 1"): '
            + "; ".join(found[:2])]


def stale_problems(text: str, repo: Path | None = None) -> list[str]:
    """Stale or placeholder text (:data:`STALE`), a "file.md section N" reference, and, with
    ``repo``, every repository path the text names (:data:`REPO_FILE`) that does not exist
    there."""
    problems = []
    for what, pattern in STALE.items():
        problems += _found(what, pattern, text)
    problems += _found('a "<file>.md section N" reference', SECTION_OF_FILE, text)
    if repo is not None:
        gone = sorted({m.group(1).rstrip(".") for m in REPO_FILE.finditer(text)
                       if not (Path(repo) / m.group(1).rstrip(".")).exists()})
        if gone:
            problems.append(f"{len(gone)} x a file that does not exist: {', '.join(gone[:4])}")
    return problems


EXHIBIT_NUMBER = re.compile(r"^(Table|Figure) (\d+)\.(\d+)$")
"""An exhibit's number in the book's one scheme: its kind, its chapter's number, its place."""

HAND_NUMBER = re.compile(r"^(?:Table|Figure|Fig\.) [\dA-Z]+[a-z]?\b")
"""A number written by hand at the head of a caption ("Table 1a.", "Figure D1."), which the
scheme replaces."""


def _chapter_number(article) -> str | None:
    """The chapter's number from its title ("4. Overall results" gives "4"); None when the
    page is not numbered (the book's first page)."""
    title = article.find("h1")
    number = title.find("span", class_="section-number") if title else None
    return number.get_text(strip=True).rstrip(".") if number else None


def numbering_problems(pages: dict[str, str]) -> list[str]:
    """Every break of the book's numbering over its pages (``{chapter: DOM}``): an exhibit
    (a ``<figure>``) whose caption has no number "Table N.k" / "Figure N.k", or one whose N is
    not its chapter's, a caption that still starts with a hand-written number, a number given
    twice in the book, and a table outside a numbered exhibit (a box, an admonition, may hold
    one: the first page's summary of the claims is such a box)."""
    problems, seen = [], {}
    for chapter, dom in pages.items():
        soup = BeautifulSoup(dom, "html.parser")
        article = soup.select_one("article.bd-article") or soup.body or soup
        own = _chapter_number(article)
        for k, figure in enumerate(article.find_all("figure"), start=1):
            caption = figure.find("figcaption")
            text = " ".join(caption.get_text(" ").split()) if caption else ""
            where = f"{chapter}: exhibit {k} ('{text[:40]}')"
            number = caption.find("span", class_="caption-number") if caption else None
            match = EXHIBIT_NUMBER.match(number.get_text(" ").strip()) if number else None
            if match is None:
                problems.append(f"{where}: no number in the scheme")
                continue
            label = f"{match[1]} {match[2]}.{match[3]}"
            if match[2] != own:
                problems.append(f"{where}: {label} is not numbered in its chapter ({own})")
            rest = caption.find("span", class_="caption-text")
            if rest is not None and HAND_NUMBER.match(" ".join(rest.get_text(" ").split())):
                problems.append(f"{where}: a hand-written number after {label}")
            if label in seen:
                problems.append(f"{where}: {label} is also {seen[label]}'s")
            seen.setdefault(label, chapter)
        loose = [t for t in article.find_all("table")
                 if t.find_parent("figure") is None and t.find_parent(class_="admonition") is None]
        if loose:
            problems.append(f"{chapter}: {len(loose)} x a table outside a numbered exhibit")
    return problems


def page_problems(dom: str, single_seed: tuple[str, ...] = (),
                  repo: Path | None = None) -> list[str]:
    """Every problem of one rendered chapter page: figures without a caption or with a path
    as alt text, "…" (or a table cell "..."), "NaN", "Traceback", and "± 0.00" where the
    result is of one seed (``single_seed``: display names of the models run with one seed), and
    stale text (:func:`stale_problems`, files checked against ``repo`` when given)."""
    soup = BeautifulSoup(dom, "html.parser")
    article = soup.select_one("article.bd-article") or soup.body or soup
    text = article.get_text(" ")
    problems = _figure_problems(article) + _hover_problems(article)
    problems += _found('"…" (truncated text)', re.compile("…"), text)
    cut = [td for td in article.find_all(["td", "th"]) if td.get_text(strip=True) in ("...", "…")]
    if cut:
        problems.append(f"{len(cut)} x a table cell '...' (a truncated table)")
    problems += _found('"NaN"', NAN, text)
    problems += _zero_spread_of_one_seed(article, single_seed)
    problems += stale_problems(text, repo)
    if "Traceback" in soup.get_text(" "):
        problems.append('"Traceback" on the page')
    return problems

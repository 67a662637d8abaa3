"""CITATION.cff: parseable, complete for CFF 1.2.0, and in step with the package and the paper."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

import spineseg_core

REPO = Path(__file__).resolve().parent.parent
PAPER_DOI = "10.1145/3512527.3531356"
# The paper's author order, from its ACM reference format (shared/reference/paper).
PAPER_AUTHORS = [("Neng", "Zhou"), ("Hairu", "Wen"), ("Yi", "Wang"), ("Yang", "Liu"),
                 ("Longfei", "Zhou")]


@pytest.fixture(scope="module")
def cff() -> dict:
    return yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))


def test_required_keys_of_cff_1_2_0(cff):
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):  # the format's required keys
        assert isinstance(cff[key], (str, list)) and cff[key], key
    assert cff["type"] == "software"
    assert cff["authors"] == [{"name": "spineseg contributors"}]


def test_version_and_license_match_the_package(cff):
    assert cff["version"] == spineseg_core.__version__
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert cff["version"] == project["version"]
    assert cff["license"] == project["license"]


def test_the_paper_is_referenced_with_its_doi_and_authors(cff):
    papers = [r for r in cff["references"] if r.get("doi") == PAPER_DOI]
    assert len(papers) == 1, [r.get("doi") for r in cff["references"]]
    paper = papers[0]
    assert paper["type"] == "conference-paper" and paper["year"] == 2022
    assert paper["title"] == "Review of Deep Learning Models for Spine Segmentation"
    assert [(a["given-names"], a["family-names"]) for a in paper["authors"]] == PAPER_AUTHORS
    assert paper["url"] == f"https://doi.org/{PAPER_DOI}"
    assert "ICMR" in paper["conference"]["name"]

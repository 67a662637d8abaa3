"""``spineseg main``'s steps (each one another sub-command), recorded instead of run."""

from __future__ import annotations

import argparse
import subprocess

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


def test_results_go_to_a_git_ignored_folder_by_default(tmp_path, capsys):
    """The default keeps the committed bundle results/<profile>/ as it is, and says so; only
    --results-dir results remakes it."""
    parser = argparse.ArgumentParser()
    main_command.add_arguments(parser)
    assert parser.parse_args([]).results_dir == main_command.LOCAL_RESULTS
    local = main_command.where_results_go(main_command.REPO_ROOT / "results" / "local", "cpu")
    assert local.startswith(f"main: results go to {main_command.REPO_ROOT}/results/local/cpu; "
                            f"the committed bundle {main_command.REPO_ROOT}/results/cpu stays")
    committed = main_command.where_results_go(main_command.REPO_ROOT / "results", "cpu")
    assert committed.startswith("main: remaking the committed bundle ")
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/local/cpu/bundle.json"],
                             cwd=main_command.REPO_ROOT)
    assert ignored.returncode == 0


def test_dry_run_plans_every_study_and_trains_nothing(monkeypatch, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    calls = _steps(monkeypatch, tmp_path, "--models", "unet", "miniseg", "--seeds", "0", "1",
                   "--loss-models", "unet", "--dry-run")
    assert [t for t, _ in calls] == ["study (dry run)", "loss comparison (dry run)"]
    assert all(argv[0] == "study" and "--dry-run" in argv for _, argv in calls)
    out = capsys.readouterr().out
    # unet: 2 seeds + 3 other losses; its weights are 4 bytes per parameter.
    from spineseg_core.models import build_model

    unet_mb = 4 * sum(t.numel() for t in build_model("unet").state_dict().values()) / 1e6
    assert "unet                 5 runs x " in out and "predictions <= ? MB" in out
    assert f"(weights {unet_mb:.0f} MB" in out
    assert "miniseg              2 runs x " in out
    assert "total: about " in out


def test_the_budget_of_the_main_job(monkeypatch, tmp_path):
    """On the cpu profile the main job trains at the study's budget in force (the seed raised
    it in results/plateau/budget.json); --steps overrides it; other profiles keep their own."""
    import json

    from spineseg_core.training.config import CPU_STEPS

    monkeypatch.setattr(main_command, "REPO", tmp_path)
    assert main_command.budget_args("cpu", None) == []  # nothing raised: CPU_STEPS itself
    (tmp_path / "results/plateau").mkdir(parents=True)
    (tmp_path / "results/plateau/budget.json").write_text(json.dumps(
        {"steps": 2 * CPU_STEPS, "raised_from": CPU_STEPS}))
    assert main_command.budget_args("cpu", None) == ["-p", "steps", str(2 * CPU_STEPS)]
    assert main_command.budget_args("smoke", None) == []
    assert main_command.budget_args("smoke", 8) == ["-p", "steps", "8"]
    calls = dict(_steps(monkeypatch, tmp_path, "--steps", "8", "--loss-models", "unet",
                        "--context-models", "unet_25d3"))
    for title in ("study", "loss comparison", "context study"):
        assert _after(calls[title], "steps") == ["8"], title
    from spineseg_core.errors import ConfigError

    with pytest.raises(ConfigError, match="--steps 0: expected a positive"):
        main_command.budget_args("cpu", 0)

"""``scripts/plateau_rerun.py`` without training: the budget seed's part (its study commands
beside those ``scripts/budget_seed.sh`` gave in bash, the hard cases after each run at B, the
commit messages), the pin it writes or refuses in a temporary git repository, ``--no-commit``,
the dry run's status of the committed records, and the wrapper ``scripts/budget_seed.sh``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from script_helpers import commit_all, git, load_script
from spineseg_core.fingerprint import commit_fingerprint
from spineseg_core.study.records import has_record

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"


rerun = load_script("plateau_rerun")


def _option(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


class FakeSpineseg:
    """Stands for ``rerun.spineseg``: notes each command and, for a study, writes the run's
    record (``metrics.json``) as a finished run would; an aggregation writes the records it
    found into ``--out``/``bundle.json``."""

    def __init__(self, records: Path | None = None, ok: bool = True):
        self.calls: list[tuple[list[str], Path]] = []
        self.records, self.ok = records, ok

    def __call__(self, command: list[str], code: Path, last_line: bool = False) -> bool:
        self.calls.append((command, code))
        if self.records is not None and command[3] == "study" and self.ok:
            variant = _option(command, "--variant")
            group = "cpu" + (f"-{variant}" if variant else "")
            run = self.records / group / _option(command, "--models") / "seed_0" / "fold_0"
            run.mkdir(parents=True)
            (run / "metrics.json").write_text("{}")
        if self.records is not None and command[3] == "aggregate" and self.ok:
            found = sorted(str(p.parent.relative_to(self.records))
                           for p in self.records.rglob("metrics.json"))
            Path(_option(command, "--out"), "bundle.json").write_text(repr(found))
        return self.ok


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The script pointed at a temporary results folder, its pinned code at ``tmp/code`` with
    B = 2940, its launches noted, not made."""
    plateau = tmp_path / "plateau"
    monkeypatch.setattr(rerun, "HERE", tmp_path)  # the checkpoints' default: never the real one
    monkeypatch.setattr(rerun, "PLATEAU", plateau)
    monkeypatch.setattr(rerun, "code_version", lambda seed, dry_run: (tmp_path / "code", False))
    monkeypatch.setattr(rerun, "pinned_steps", lambda code: 2940)
    spineseg = FakeSpineseg()
    monkeypatch.setattr(rerun, "spineseg", spineseg)
    return spineseg


def _bash_study(runs: Path, records: Path, model: str, *extra: str) -> list[str]:
    """What ``study`` of the bash ``budget_seed.sh`` (before it became a wrapper) ran."""
    return [sys.executable, "-m", "spineseg_core", "study", "--profile", "cpu", "--runs-dir",
            str(runs), "--records-dir", str(records), "--no-aggregate", "--poll-s", "30",
            "--seeds", "0", "--models", model, *extra]


def _parsed(cmd: list[str]):
    from spineseg_core.cli import build_parser

    assert cmd[:3] == [sys.executable, "-m", "spineseg_core"]
    return build_parser().parse_args(cmd[3:])


@pytest.mark.parametrize("steps, full", [(None, []), ("2940", []),
                                         ("5880", ["-p", "steps", "5880"])])
def test_the_seed_makes_b_half_then_b_with_the_bash_scripts_flags(fake, tmp_path, steps, full):
    runs, records = tmp_path / "runs", tmp_path / "plateau" / "runs"
    if steps == "5880":  # a raised budget is recorded by scripts/raise_budget.py
        (tmp_path / "plateau").mkdir()
        (tmp_path / "plateau" / "budget.json").write_text('{"steps": 5880, "raised_from": 2940}')
    rerun.main(["--parts", "seed", "--models", "unet", "miniseg", "--no-commit", "--runs-dir",
                str(runs)] + (["--steps", steps] if steps else []))
    b = int(steps or 2940)
    half = ["--variant", "half", "-p", "steps", str(b // 2)]
    hard = [sys.executable, "-m", "spineseg_core", "hardcases", "--runs-dir", str(runs),
            "--groups", "cpu", "--records-dir", str(records)]
    agg = [sys.executable, "-m", "spineseg_core", "aggregate", "--profile", "cpu", "--runs-dir",
           str(records), "--out", str(tmp_path / "plateau"), "--pins", str(tmp_path / "plateau"),
           "--baseline"]
    got = [cmd for cmd, _ in fake.calls]
    assert got == [
        [sys.executable, "-m", "spineseg_core", "study", "--profile", "cpu", "--models", "unet",
         "--seeds", "0", "--folds", "0", *half, "--runs-dir", str(runs), "--records-dir",
         str(records), "--no-aggregate", "--poll-s", "30"], agg,
        [sys.executable, "-m", "spineseg_core", "study", "--profile", "cpu", "--models", "unet",
         "--seeds", "0", "--folds", "0", *full, "--runs-dir", str(runs), "--records-dir",
         str(records), "--no-aggregate", "--poll-s", "30"],
        hard, agg, got[5], agg, got[7], hard, agg]
    assert [_option(c, "--models") for c in (got[5], got[7])] == ["miniseg", "miniseg"]
    # runs and scores come from the pinned code, the bundle from this checkout's analysis
    assert {code for c, code in fake.calls if c != agg} == {tmp_path / "code"}
    assert {code for c, code in fake.calls if c == agg} == {tmp_path}
    # the same runs as the bash script's (``--folds 0`` is the study's default)
    bash = [_bash_study(runs, records, "unet", *half), _bash_study(runs, records, "unet", *full),
            _bash_study(runs, records, "miniseg", *half),
            _bash_study(runs, records, "miniseg", *full)]
    assert [_parsed(c) for c in (got[0], got[2], got[5], got[7])] == [_parsed(c) for c in bash]
    fake.calls.clear()
    rerun.main(["--parts", "seed", "--models", "unet", "--no-commit", "--no-aggregate",
                "--runs-dir", str(runs)])
    assert [c[3] for c, _ in fake.calls] == ["study", "study", "hardcases"]


def test_the_budget_comes_from_budget_json_and_another_steps_is_refused(fake, tmp_path, capsys):
    with pytest.raises(SystemExit, match="--steps 5880: the study's budget is 2940 steps"):
        rerun.main(["--parts", "seed", "--models", "unet", "--no-commit", "--steps", "5880"])
    assert not fake.calls
    (tmp_path / "plateau").mkdir()
    (tmp_path / "plateau" / "budget.json").write_text('{"steps": 5880, "raised_from": 2940}')
    rerun.main(["--parts", "seed", "--models", "unet", "--no-commit", "--dry-run"])
    assert "B = 5880 steps" in capsys.readouterr().out
    rerun.main(["--parts", "seed", "--models", "unet", "--no-commit"])
    studies = [c for c, _ in fake.calls if c[3] == "study"]
    assert [_option(c, "-p") for c in studies] == ["steps", "steps"]
    assert studies[1][studies[1].index("-p") + 2] == "5880"


def test_a_checkpoint_folder_of_another_budget_stops_the_seed(fake, tmp_path):
    """The pinned runner would skip a finished folder of the old B as the new B's run: the
    script refuses first, naming it (a raise on another machine leaves this one's folders)."""
    (tmp_path / "plateau").mkdir()
    (tmp_path / "plateau" / "budget.json").write_text('{"steps": 5880, "raised_from": 2940}')
    old = tmp_path / "runs" / "cpu" / "unet" / "seed_0" / "fold_0"
    old.mkdir(parents=True)
    (old / "params.json").write_text('{"steps": 2940}')
    with pytest.raises(SystemExit, match="cpu/unet/seed_0/fold_0: made for a budget of 2940 "
                                         "steps, this study asks 5880"):
        rerun.main(["--parts", "seed", "--models", "unet", "--no-commit", "--runs-dir",
                    str(tmp_path / "runs")])
    assert fake.calls == []


def test_a_failed_run_is_not_scored_and_the_seed_goes_on(fake, tmp_path, monkeypatch):
    failing = FakeSpineseg(ok=False)
    monkeypatch.setattr(rerun, "spineseg", failing)
    rerun.main(["--parts", "seed", "--models", "unet", "miniseg", "--no-commit"])
    assert [(c[3], _option(c, "--models")) for c, _ in failing.calls] == [
        ("study", "unet"), ("study", "unet"), ("study", "miniseg"), ("study", "miniseg")]


@pytest.mark.parametrize("resumed, made", [
    (False, ["unet half", "miniseg half"]),
    (True, ["unet half", "unet", "miniseg half"]),
])
def test_hours_starts_only_the_runs_that_end_in_the_time_left(fake, tmp_path, monkeypatch, capsys,
                                                            resumed, made):
    # unet: 0.5 h at B/2, 1 h at B; miniseg half that; 2205 of B's 2940 steps made: 0.25 h left
    runs = tmp_path / "runs"
    if resumed:
        run = runs / "cpu" / "unet" / "seed_0" / "fold_0"
        run.mkdir(parents=True)
        (run / "history.csv").write_text("epoch,step\n1,735\n2,1470\n3,2205\n")
        (run / "checkpoint_last.pt").write_bytes(b"x")
    rates = {"unet": 3600 / 2940, "miniseg": 1800 / 2940}
    monkeypatch.setattr(rerun, "seconds_per_step", lambda models, records: (rates, None))
    now = [0.0]
    monkeypatch.setattr(rerun, "clock", lambda: now[0])
    started = []

    def timed(command, code, last_line=False):
        if command[3] == "study":
            model, half = _option(command, "--models"), "--variant" in command
            started.append(model + (" half" if half else ""))
            hours = (0.5 if half else 0.25 if resumed else 1.0) * (rates[model] / rates["unet"])
            now[0] += 3600 * hours
        return fake(command, code, last_line)

    monkeypatch.setattr(rerun, "spineseg", timed)
    args = ["--parts", "seed", "--models", "unet", "miniseg", "--no-commit", "--no-aggregate",
            "--runs-dir", str(runs), "--hours", "1.2"]
    rerun.main(args + ["--dry-run"])
    listed = capsys.readouterr().out
    assert len([line for line in listed.splitlines() if line.endswith("to do")]) == len(made)
    assert listed.count("later (--hours 1.2)") == 4 - len(made)
    rerun.main(args)
    assert started == made
    out = capsys.readouterr().out
    assert "cpu miniseg seed 0: left for a later sitting, it needs about 0.5 h" in out
    assert out.count("left for a later sitting") == 4 - len(made)


def test_hours_must_be_positive(fake):
    with pytest.raises(SystemExit, match="--hours: expected a positive number of hours, got 0"):
        rerun.main(["--parts", "seed", "--hours", "0", "--dry-run"])


def test_the_seed_commit_messages_are_the_bash_scripts():
    from spineseg_core.study.schedule import rerun_plan, seed_plan

    half, full = seed_plan(2940, models=["unet"])
    assert rerun.message(half, 2940) == "Budget seed: unet at B/2 = 1470 steps, seed 0"
    assert rerun.message(full, 2940) == "Budget seed: unet at B = 2940 steps, seed 0"
    assert rerun.message(seed_plan(5880, True, models=["unet"])[1], 5880) == (
        "Budget seed: unet at B = 5880 steps, seed 0")
    assert rerun.message(rerun_plan(2940)[0], 2940).startswith("Plateau re-run (main): ")


def test_the_bundle_message_names_the_label_at_b(tmp_path, monkeypatch):
    from spineseg_core.study.schedule import seed_plan

    monkeypatch.setattr(rerun, "PLATEAU", tmp_path)
    half, full = seed_plan(5880, True, models=["miniseg"])
    assert rerun.bundle_message(full, 5880) == (
        "results/plateau: the bundle with MiniSeg in cpu (5880 steps)")  # no plateau.csv yet
    (tmp_path / "plateau.csv").write_text(
        "model,label,steps,half_steps,val_dice,half_val_dice\n"
        "unet,plateaued,5880,2940,0.8866,0.9014\n"
        "miniseg,not plateaued,5880,2940,0.7084,0.5862\n"
        "pspnet,not measured,5880,2940,,0.804\n")
    assert rerun.bundle_message(half, 5880) == (
        "results/plateau: the bundle with MiniSeg in cpu-half (2940 steps)")
    assert rerun.bundle_message(full, 5880) == (
        "results/plateau: MiniSeg at B = 5880 (validation Dice 70.8 % against 58.6 % at "
        "B/2 = 2940: not plateaued); 1 of 2 measured at 5880 plateaued")
    pspnet = seed_plan(5880, True, models=["pspnet"])[1]
    assert rerun.bundle_message(pspnet, 5880) == (
        "results/plateau: the bundle with PSPNet in cpu (5880 steps)")


def _records(records: Path, *runs: tuple[str, str]) -> None:
    for group, model in runs:
        run = records / group / model / "seed_0" / "fold_0"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text("{}")


def test_the_dry_run_lists_recorded_runs_and_makes_none(fake, tmp_path, capsys):
    _records(tmp_path / "plateau" / "runs", ("cpu-half", "unet"), ("cpu", "unet"),
             ("cpu-half", "miniseg"))
    rerun.main(["--parts", "seed", "--models", "unet", "miniseg", "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("code code, B = 2940 steps; 3 of 4 runs recorded; ")
    assert "seed " in out[0]
    assert [line.split() for line in out[1:]] == [
        ["seed", "cpu-half", "unet", "seed", "0", "recorded"],
        ["seed", "cpu", "unet", "seed", "0", "recorded"],
        ["seed", "cpu-half", "miniseg", "seed", "0", "recorded"],
        ["seed", "cpu", "miniseg", "seed", "0", "to", "do"]]
    assert fake.calls == []


def test_the_dry_run_of_the_seed_reads_the_committed_records(tmp_path, monkeypatch, capsys):
    """The seed's runs in ``results/plateau/runs`` are shown as recorded, the others to do."""
    from spineseg_core.study.schedule import SEED_ORDER

    monkeypatch.setattr(rerun, "code_version", lambda seed, dry_run: (tmp_path / "code", False))
    monkeypatch.setattr(rerun, "pinned_steps", lambda code: 2940)
    monkeypatch.setattr(rerun, "spineseg", FakeSpineseg())
    monkeypatch.setattr(rerun, "mended_code", lambda model: tmp_path / "own" / model)
    rerun.main(["--parts", "seed", "--dry-run"])
    lines = [line.split() for line in capsys.readouterr().out.splitlines()[1:]
             if line.startswith("  seed ")]
    assert [(f[2], f[1]) for f in lines] == [(m, g) for m in SEED_ORDER for g in ("cpu-half", "cpu")]
    records = REPO / "results" / "plateau" / "runs"
    shown = {(f[2], f[1]) for f in lines if f[5] == "recorded"}
    assert shown == {(m, g) for m, g in {(f[2], f[1]) for f in lines}
                     if has_record(records / g / m / "seed_0" / "fold_0")}
    assert shown  # the seed's committed records


def test_the_dry_run_without_hours_lists_an_unpriced_run_to_do(fake, monkeypatch, capsys):
    """No rate for the model: the first line says so and each run is still to do (no sitting
    limit), rather than the dry run failing on a time left made nan by an infinite price."""
    monkeypatch.setattr(rerun, "seconds_per_step", lambda models, records: ({"unet": 1.0}, None))
    rerun.main(["--parts", "seed", "--models", "unet3d", "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("(not priced: unet3d)")
    assert [line.split()[1:3] + line.split()[-2:] for line in lines[1:]] == [
        ["cpu-half", "unet3d", "to", "do"], ["cpu", "unet3d", "to", "do"]]


def test_a_held_model_is_listed_with_why_and_never_started(fake, tmp_path, monkeypatch,
                                                          capsys):
    """A hold on the pinned code (``schedule.held`` of its folder's name) keeps the model's runs
    out of the sitting and of its hours, while the others run as before."""
    seen = []

    def held(commit: str, mended: object = ()) -> dict[str, str]:
        seen.append(commit)
        return {"miniseg": "measured wrongly by this code"}

    monkeypatch.setattr(rerun, "held", held)
    rerun.main(["--parts", "seed", "--models", "unet", "miniseg", "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    assert seen == ["code"]  # the pinned checkout's folder: the commit's first 12 digits
    assert lines[0].startswith("code code, B = 2940 steps; 0 of 4 runs recorded; ")
    assert lines[1] == "miniseg held: measured wrongly by this code"
    assert [line.split()[1:3] + line.split()[-2:] for line in lines[2:]] == [
        ["cpu-half", "unet", "to", "do"], ["cpu", "unet", "to", "do"],
        ["cpu-half", "miniseg", "0", "held"], ["cpu", "miniseg", "0", "held"]]
    rerun.main(["--parts", "seed", "--models", "unet", "miniseg", "--no-commit",
                "--no-aggregate", "--runs-dir", str(tmp_path / "runs")])
    assert [_option(c, "--models") for c, _ in fake.calls if c[3] == "study"] == ["unet", "unet"]


def test_a_model_is_priced_the_same_alone_or_with_others(tmp_path):
    """The 3D U-Net is priced by its ratio to other models in the committed context runs,
    whatever the plan holds: ``--models unet3d`` gets the whole seed's price."""
    from spineseg_core.study.schedule import SEED_ORDER

    alone, _ = rerun.seconds_per_step({"unet3d"}, tmp_path)
    beside, _ = rerun.seconds_per_step(set(SEED_ORDER), tmp_path)
    assert "unet3d" in alone
    assert alone["unet3d"] == pytest.approx(beside["unet3d"])


def test_the_other_parts_keep_the_models_given(fake, capsys):
    rerun.main(["--parts", "main", "res256", "--models", "unet", "--dry-run"])
    lines = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(f[0], f[1], f[2], f[4]) for f in lines] == [
        ("main", "cpu", "unet", "1"), ("main", "cpu", "unet", "2"),
        ("res256", "cpu-res256", "unet", "0")]
    with pytest.raises(SystemExit, match="unknown model nonet"):
        rerun.main(["--parts", "seed", "--models", "nonet", "--dry-run"])


# --- the pin, in a temporary git repository -------------------------------------------------

def _git(repo: Path, *args: str) -> str:
    return git(repo, *args).strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository with fingerprinted files, the script's root; runs are noted and
    recorded, not made."""
    root = tmp_path / "repo"
    (root / "spineseg_core").mkdir(parents=True)
    (root / "spineseg_core" / "labels.py").write_text("LABELS = 20\n")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "train.ipynb").write_text("{}\n")
    (root / "README.md").write_text("a study\n")
    commit_all(root, monkeypatch)
    monkeypatch.setattr(rerun, "HERE", root)
    monkeypatch.setattr(rerun, "PLATEAU", root / "results" / "plateau")
    monkeypatch.setattr(rerun, "LOCK", str(tmp_path / "git.lock"))
    monkeypatch.setattr(rerun, "pinned_steps", lambda code: 2940)
    spineseg = FakeSpineseg(root / "results" / "plateau" / "runs")
    monkeypatch.setattr(rerun, "spineseg", spineseg)
    return root, spineseg


def _log(root: Path) -> list[str]:
    return _git(root, "log", "--format=%s").splitlines()


def test_the_seed_refuses_to_pin_uncommitted_fingerprinted_files(repo, capsys):
    root, spineseg = repo
    (root / "spineseg_core" / "labels.py").write_text("LABELS = 21\n")
    with pytest.raises(SystemExit) as stop:
        rerun.main(["--parts", "seed", "--models", "unet"])
    line = str(stop.value.code)
    assert line.startswith("plateau_rerun: ") and "\n" not in line
    assert "uncommitted changes" in line and "commit them first" in line
    assert not (root / "results" / "plateau" / "CODE").exists()
    assert not (root / ".study-code").exists()
    assert spineseg.calls == [] and _log(root) == ["init"]
    # a file outside the fingerprint does not stop it
    (root / "spineseg_core" / "labels.py").write_text("LABELS = 20\n")
    (root / "README.md").write_text("a changed study\n")
    rerun.main(["--parts", "seed", "--models", "unet"])
    assert (root / "results" / "plateau" / "CODE").is_file()


def test_the_seed_pins_head_and_commits_each_record(repo):
    root, spineseg = repo
    head = _git(root, "rev-parse", "HEAD")
    rerun.main(["--parts", "seed", "--models", "unet"])
    code = root / ".study-code" / head[:12]
    assert (root / "results" / "plateau" / "CODE").read_text() == (
        f"{head} {commit_fingerprint(head, root)}\n")
    assert code.is_dir() and {c for cmd, c in spineseg.calls if cmd[3] != "aggregate"} == {code}
    assert {c for cmd, c in spineseg.calls if cmd[3] == "aggregate"} == {root}
    assert _log(root) == ["results/plateau: the bundle with U-Net in cpu (2940 steps)",
                          "Budget seed: unet at B = 2940 steps, seed 0",
                          "results/plateau: the bundle with U-Net in cpu-half (1470 steps)",
                          "Budget seed: unet at B/2 = 1470 steps, seed 0",
                          rerun.PIN_MESSAGE, "init"]
    bundle = root / "results" / "plateau" / "bundle.json"
    assert _git(root, "show", "--name-only", "--format=", "HEAD").splitlines() == [
        "results/plateau/bundle.json"]
    assert "cpu/unet/seed_0/fold_0" in bundle.read_text()  # made after the record at B
    for rev in ("HEAD", "HEAD~1", "HEAD~2", "HEAD~3", "HEAD~4"):
        files = _git(root, "show", "--name-only", "--format=", rev).splitlines()
        assert files and all(f.startswith("results/plateau/") for f in files)
    # a second start keeps the pin, skips what is recorded and commits nothing new
    _git(root, "commit", "-q", "--allow-empty", "-m", "later")
    spineseg.calls.clear()
    rerun.main(["--parts", "seed", "--models", "unet"])
    assert spineseg.calls == [] and _log(root)[0] == "later"
    assert (root / "results" / "plateau" / "CODE").read_text().split()[0] == head


def test_no_commit_commits_nothing(repo):
    root, spineseg = repo
    rerun.main(["--parts", "seed", "--models", "unet", "--no-commit"])
    assert _log(root) == ["init"]
    assert (root / "results" / "plateau" / "CODE").is_file()
    assert [c[3] for c, _ in spineseg.calls] == ["study", "aggregate", "study", "hardcases",
                                                 "aggregate"]
    assert "results/" in _git(root, "status", "--porcelain", "--untracked-files=all")


def test_without_a_pin_a_dry_run_plans_from_head_and_the_rest_refuses(repo, capsys):
    root, spineseg = repo
    head = _git(root, "rev-parse", "HEAD")
    rerun.main(["--parts", "seed", "--models", "unet", "--dry-run"])
    out = capsys.readouterr().out
    assert "no pin yet" in out and f"planned from HEAD {head[:12]}, which a start pins" in out
    assert f"code {head[:12]}, B = 2940 steps; 0 of 2 runs recorded" in out
    assert not (root / "results" / "plateau" / "CODE").exists()
    assert spineseg.calls == [] and _log(root) == ["init"]
    with pytest.raises(SystemExit, match="CODE: missing; the budget seed"):
        rerun.main(["--parts", "main", "--dry-run"])


def test_mend_gives_a_held_model_its_own_pin_and_its_runs_are_made_from_it(repo, monkeypatch,
                                                                         tmp_path, capsys):
    """``--mend``: refused while the study's pin does not hold the model, while HEAD lacks the
    mend or has uncommitted fingerprinted files, and a second time; otherwise HEAD is pinned
    in ``CODE.<model>``, the model's records and checkpoints from the study's pin move aside
    and are committed so, and its runs are made again from its own checkout while the others'
    come from the study's."""
    from spineseg_core.study import schedule

    root, spineseg = repo
    study = _git(root, "rev-parse", "HEAD")
    rerun.main(["--parts", "seed", "--models", "unet"])  # pins the study at HEAD
    plateau, runs_dir = root / "results" / "plateau", tmp_path / "ck"
    old = plateau / "runs" / "cpu-half" / "unet3d" / "seed_0" / "fold_0"
    old.mkdir(parents=True)
    (old / "metrics.json").write_text("{}")
    (runs_dir / "cpu-half" / "unet3d" / "seed_0" / "fold_0").mkdir(parents=True)
    commit_all(root, monkeypatch, "a record of unet3d from the study's pin")
    with pytest.raises(SystemExit, match="does not hold unet3d"):
        rerun.main(["--mend", "unet3d", "--runs-dir", str(runs_dir)])
    (root / "spineseg_core" / "labels.py").write_text("LABELS = 20  # mended\n")
    commit_all(root, monkeypatch, "the mend")
    mend = _git(root, "rev-parse", "HEAD")
    monkeypatch.setattr(schedule, "HOLDS", (schedule.Hold("unet3d", study[:12], mend[:12],
                                                          "scored wrongly"),))
    rerun.main(["--parts", "seed", "--models", "unet", "unet3d", "--dry-run"])
    assert "unet3d held: scored wrongly" in capsys.readouterr().out
    _git(root, "checkout", "-q", "HEAD~1")
    with pytest.raises(SystemExit, match=f"does not hold the mend {mend[:7]}"):
        rerun.main(["--mend", "unet3d", "--runs-dir", str(runs_dir)])
    _git(root, "checkout", "-q", "-")
    (root / "spineseg_core" / "labels.py").write_text("LABELS = 22\n")
    with pytest.raises(SystemExit, match="uncommitted changes"):
        rerun.main(["--mend", "unet3d", "--runs-dir", str(runs_dir)])
    (root / "spineseg_core" / "labels.py").write_text("LABELS = 20  # mended\n")
    assert _git(root, "status", "--porcelain") == ""  # nothing was moved or written
    clash = tmp_path / "ck-superseded" / "cpu-half" / "unet3d"
    clash.mkdir(parents=True)
    with pytest.raises(SystemExit, match="ck-superseded/cpu-half/unet3d exists; move it away"):
        rerun.main(["--mend", "unet3d", "--runs-dir", str(runs_dir)])
    assert old.is_dir() and _git(root, "status", "--porcelain") == ""  # checked before moving
    clash.rmdir()
    spineseg.calls.clear()
    rerun.main(["--mend", "unet3d", "--runs-dir", str(runs_dir)])
    assert (plateau / "CODE.unet3d").read_text() == f"{mend} {commit_fingerprint(mend, root)}\n"
    assert (plateau / "CODE").read_text().split()[0] == study
    assert not old.exists() and not (runs_dir / "cpu-half" / "unet3d").exists()
    assert (plateau / "superseded" / study[:12] / "cpu-half" / "unet3d" / "seed_0" / "fold_0"
            / "metrics.json").is_file()
    assert (tmp_path / "ck-superseded" / "cpu-half" / "unet3d" / "seed_0" / "fold_0").is_dir()
    assert _log(root)[0] == (f"Budget seed: unet3d runs from its own pin, {mend[:7]}, which "
                             "holds the mend of its hold (results/plateau/CODE.unet3d); its 1 "
                             "record from the study's pin moved to results/plateau/superseded/")
    assert [c[3] for c, _ in spineseg.calls] == ["aggregate"]  # remade: nothing new to commit
    assert "unet3d" not in (plateau / "bundle.json").read_text()
    assert _git(root, "status", "--porcelain") == ""
    with pytest.raises(SystemExit, match=f"already pins it at {mend[:12]}"):
        rerun.main(["--mend", "unet3d", "--runs-dir", str(runs_dir)])
    spineseg.calls.clear()
    rerun.main(["--parts", "seed", "--models", "unet", "unet3d", "--runs-dir", str(runs_dir),
                "--no-aggregate"])
    assert f"unet3d runs from its own pin, code {mend[:12]} (CODE.unet3d)" in (
        capsys.readouterr().out)
    made = [(c[3], _option(c, "--models") or _option(c, "--groups"), code.name)
            for c, code in spineseg.calls]
    assert made == [("study", "unet3d", mend[:12]), ("study", "unet3d", mend[:12]),
                    ("hardcases", "cpu", mend[:12])]  # unet was recorded from the study's pin


def test_mend_refuses_a_model_the_registry_does_not_know(repo):
    with pytest.raises(SystemExit, match="unknown model nonet"):
        rerun.main(["--mend", "nonet"])


# --- the wrapper --------------------------------------------------------------------------

@pytest.mark.parametrize("env, expected", [
    ({}, ["--parts", "seed"]),
    ({"COMMIT": "0"}, ["--parts", "seed", "--no-commit"]),
    ({"B": "5880", "MODELS": "unet miniseg", "RUNS": "elsewhere"},
     ["--parts", "seed", "--steps", "5880", "--models", "unet", "miniseg", "--runs-dir",
      "elsewhere"]),
])
def test_budget_seed_sh_passes_its_environment_as_options(tmp_path, env, expected):
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\npwd\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if k not in ("B", "MODELS", "RUNS", "COMMIT")}
    done = subprocess.run(["bash", str(SCRIPTS / "budget_seed.sh"), "--dry-run"], cwd=tmp_path,
                          capture_output=True, text=True, check=True,
                          env={**clean, "PYTHON": str(fake), **env})
    assert done.stdout.splitlines() == [str(REPO), "scripts/plateau_rerun.py", *expected,
                                        "--dry-run"]

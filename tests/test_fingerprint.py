"""The source fingerprint: what it hashes, and that runs and bundles carry it."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from fake_runs import FAKE_FINGERPRINT, make_fake_study, write_fake_run
from spineseg_core.cli import main
from spineseg_core.envinfo import env_stamp
from spineseg_core.errors import ConfigError
from spineseg_core.fingerprint import (
    REPO,
    commit_fingerprint,
    describe,
    short,
    source_files,
    source_fingerprint,
)
from spineseg_core.study.aggregate import aggregate


@pytest.fixture
def copy(tmp_path):
    """The package and the notebook copied elsewhere, plus a book and a test beside them."""
    root = tmp_path / "repo"
    shutil.copytree(REPO / "spineseg_core", root / "spineseg_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks/train.ipynb", root / "notebooks")
    (root / "book").mkdir()
    (root / "book/chapter.md").write_text("# a chapter\n")
    (root / "tests").mkdir()
    (root / "tests/test_x.py").write_text("def test_x(): pass\n")
    return root


def test_hashes_what_computes_a_runs_numbers_only():
    rel = [p.relative_to(REPO).as_posix() for p in source_files()]
    assert rel == sorted(rel)
    for shaping in ("notebooks/train.ipynb", "spineseg_core/training/loop.py",
                    "spineseg_core/training/step.py", "spineseg_core/losses.py",
                    "spineseg_core/metrics.py", "spineseg_core/labels.py",
                    "spineseg_core/models/registry.py", "spineseg_core/data/phantom/generate.py",
                    "spineseg_core/models/backbones/resnet.py"):  # sub-packages too
        assert shaping in rel, shaping
    for reporting in ("spineseg_core/study/aggregate.py", "spineseg_core/study/runner.py",
                      "spineseg_core/measure/efficiency.py", "spineseg_core/cli.py",
                      "spineseg_core/io.py", "spineseg_core/fingerprint.py"):
        assert reporting not in rel, reporting
    assert all(r == "notebooks/train.ipynb" or (r.startswith("spineseg_core/")
                                                and r.endswith(".py")) for r in rel)


def test_stable_and_independent_of_place(copy):
    fp = source_fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert source_fingerprint() == fp
    assert source_fingerprint(copy) == fp  # same bytes elsewhere: same fingerprint
    assert env_stamp()["source_fingerprint"] == fp


def test_changes_with_the_code_only(copy):
    before = source_fingerprint(copy)
    (copy / "book/chapter.md").write_text("# another chapter\n")
    (copy / "tests/test_y.py").write_text("")
    (copy / "spineseg_core/__pycache__").mkdir(exist_ok=True)
    (copy / "spineseg_core/__pycache__/x.pyc").write_bytes(b"\0")
    assert source_fingerprint(copy) == before

    target = copy / "spineseg_core/metrics.py"
    text = target.read_text()
    target.write_text(text + "\n")
    assert source_fingerprint(copy) != before
    target.write_text(text)
    assert source_fingerprint(copy) == before

    nb = copy / "notebooks/train.ipynb"
    nb.write_text(nb.read_text().replace("Training one model", "Training a model"))
    assert source_fingerprint(copy) != before
    shutil.copy(REPO / "notebooks/train.ipynb", nb)

    (copy / "spineseg_core/data/new_module.py").write_text("")
    assert source_fingerprint(copy) != before
    (copy / "spineseg_core/data/new_module.py").rename(copy / "spineseg_core/models/new_module.py")
    with_moved = source_fingerprint(copy)
    assert with_moved != before
    (copy / "spineseg_core/models/new_module.py").unlink()
    assert source_fingerprint(copy) == before

    # What reports runs may change while a re-run goes on: the aggregation, the runner.
    for reporting in ("spineseg_core/study/aggregate.py", "spineseg_core/study/runner.py"):
        (copy / reporting).write_text((copy / reporting).read_text() + "\n# edited\n")
    assert source_fingerprint(copy) == before


def test_short_and_describe():
    assert short("ab" * 32) == "abababababab"
    assert short(None) == short("unrecorded") == short(float("nan")) == "unrecorded"
    assert describe({"ab" * 32: 3, None: 1}) == "abababababab (3 runs), unrecorded (1 run)"


def _mixed(tmp_path):
    runs = tmp_path / "runs"
    a, b = "a" * 64, "b" * 64
    write_fake_run(runs / "p/unet/seed_0/fold_0", "unet", 0, profile="p", fingerprint=a)
    write_fake_run(runs / "p/unet/seed_1/fold_0", "unet", 1, profile="p", fingerprint=b)
    write_fake_run(runs / "p/miniseg/seed_0/fold_0", "miniseg", 0, profile="p", fingerprint=a)
    return runs, a, b


def test_aggregate_refuses_mixed_code_unless_told(tmp_path):
    runs, a, b = _mixed(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"2 versions of the code \(source fingerprints "
                       r"aaaaaaaaaaaa \(2 runs\), bbbbbbbbbbbb \(1 run\)\).*--allow-mixed-code"):
        aggregate("p", runs, out, n_boot=20)
    assert not out.exists()  # refused before writing anything

    bundle = aggregate("p", runs, out, n_boot=20, allow_mixed_code=True)
    assert bundle["source_fingerprint"] is None and bundle["allow_mixed_code"]
    assert bundle["source_fingerprints"] == {a: 2, b: 1}
    table = pd.read_csv(out / "runs.csv")
    assert sorted(table["source_fingerprint"]) == [a, a, b]
    assert json.loads((out / "bundle.json").read_text())["source_fingerprints"] == {a: 2, b: 1}


def test_aggregate_counts_loss_runs_and_unrecorded_ones(tmp_path):
    runs = make_fake_study(tmp_path / "runs", profile="p", models=("unet", "miniseg"), seeds=(0,))
    bundle = aggregate("p", runs, tmp_path / "out", n_boot=20)
    assert bundle["source_fingerprint"] == FAKE_FINGERPRINT
    assert bundle["source_fingerprints"] == {FAKE_FINGERPRINT: 4}  # 2 runs + 2 loss runs
    assert set(pd.read_csv(tmp_path / "out/runs.csv")["source_fingerprint"]) == {FAKE_FINGERPRINT}

    write_fake_run(runs / "p-loss-dice_ce/unet/seed_0/fold_0", "unet", profile="p",
                   loss="dice_ce", fingerprint=None)
    with pytest.raises(ConfigError, match=r"f0f0f0f0f0f0 \(4 runs\), unrecorded \(1 run\)"):
        aggregate("p", runs, tmp_path / "out", n_boot=20)


def test_cli_aggregate_mixed_code(tmp_path, capsys):
    runs, a, b = _mixed(tmp_path)
    argv = ["aggregate", "--profile", "p", "--runs-dir", str(runs), "--out",
            str(tmp_path / "res"), "--n-boot", "20"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "aaaaaaaaaaaa (2 runs), bbbbbbbbbbbb (1 run)" in err and "--allow-mixed-code" in err
    assert main(argv + ["--allow-mixed-code"]) == 0
    assert "code aaaaaaaaaaaa (2 runs), bbbbbbbbbbbb (1 run)" in capsys.readouterr().out


def test_a_separate_study_is_one_code_version_of_its_own(tmp_path):
    """The context study (group ``p-context``) may be newer code than the main runs, as long as
    it is one version itself; it is tabled apart and its fingerprint recorded."""
    runs = make_fake_study(tmp_path / "runs", profile="p", models=("unet", "miniseg"), seeds=(0,),
                           losses=())
    new = "c" * 64
    for seed in (0, 1):
        for model in ("unet", "unet_25d3", "unet3d"):
            write_fake_run(runs / f"p-context/{model}/seed_{seed}/fold_0", model, seed,
                           profile="p", fingerprint=new)
    out = tmp_path / "out"
    bundle = aggregate("p", runs, out, n_boot=20)
    assert bundle["source_fingerprint"] == FAKE_FINGERPRINT  # the main study's alone
    assert bundle["studies"]["context"] == {
        "group": "p-context", "n_runs": 6, "models": ["unet", "unet_25d3", "unet3d"],
        "source_fingerprint": new, "source_fingerprints": {new: 6}}
    table = pd.read_csv(out / "context.csv")
    assert table["model"].tolist() == ["unet", "unet", "unet_25d3", "unet_25d3", "unet3d",
                                       "unet3d"]
    assert table["input_kind"].tolist()[::2] == ["slice", "stack", "volume"]
    assert table["context"].tolist()[::2] == [1, 3, 1]
    assert set(table["source_fingerprint"]) == {new}
    assert not (out / "variants.csv").exists()  # a separate study is no side variant
    per_case = pd.read_csv(out / "context_per_case.csv.gz")
    one = pd.read_csv(runs / "p-context/unet3d/seed_0/fold_0/per_case.csv")
    assert set(per_case["group"]) == {"p-context"} and len(per_case) == 6 * len(one)
    convergence = pd.read_csv(out / "context_convergence.csv")  # the group's own curves
    assert convergence["model"].tolist() == ["unet", "unet_25d3", "unet3d"]
    assert convergence["past_steep"].dtype == bool

    write_fake_run(runs / "p-context/unet3d/seed_2/fold_0", "unet3d", 2, profile="p",
                   fingerprint="d" * 64)
    with pytest.raises(ConfigError, match=r"p-context: the runs come from 2 versions"):
        aggregate("p", runs, out, n_boot=20)


def test_context_models_of_the_main_group_are_a_study_with_the_main_groups_baselines(tmp_path):
    """The plateau re-run trains the context models in the main group: the main tables leave
    them out, the context study takes them with the main group's 2D baselines, the plateau
    rule labels every model, and a second source of the study is refused."""
    runs = make_fake_study(tmp_path / "runs", profile="p",
                           models=("unet", "miniseg", "unet_25d3", "unet3d"), seeds=(0, 1),
                           losses=())
    half = make_fake_study(tmp_path / "h", profile="p", models=("unet", "unet_25d3"),
                           seeds=(0,), losses=())
    (half / "p").rename(runs / "p-half")
    write_fake_run(runs / "p/unet/seed_2/fold_0", "unet", 2, profile="p")  # the twelve's more
    out = tmp_path / "out"
    bundle = aggregate("p", runs, out, n_boot=20)
    assert bundle["models"] == ["unet", "miniseg"]  # the main tables: the paper's models only
    assert bundle["n_runs"] == 5
    assert pd.read_csv(out / "runs.csv")["model"].tolist() == ["unet", "unet", "unet",
                                                               "miniseg", "miniseg"]
    assert pd.read_csv(out / "models.csv")["model"].tolist() == ["unet", "miniseg"]
    assert set(pd.read_csv(out / "convergence.csv")["model"]) == {"unet", "miniseg"}
    assert bundle["studies"]["context"] == {
        "group": "p", "n_runs": 6, "models": ["unet", "unet_25d3", "unet3d"],
        "source_fingerprint": FAKE_FINGERPRINT, "source_fingerprints": {FAKE_FINGERPRINT: 6}}
    table = pd.read_csv(out / "context.csv")  # U-Net seed for seed: not its seed 2
    assert table["model"].tolist() == ["unet", "unet", "unet_25d3", "unet_25d3", "unet3d",
                                       "unet3d"]
    assert table["seed"].tolist() == [0, 1] * 3
    per_case = pd.read_csv(out / "context_per_case.csv.gz")
    assert set(per_case["model"]) == {"unet", "unet_25d3", "unet3d"}
    assert set(per_case["group"]) == {"p"}
    plateau = pd.read_csv(out / "plateau.csv")  # labels for the context models too
    assert set(plateau["model"]) == {"unet", "miniseg", "unet_25d3", "unet3d"}

    write_fake_run(runs / "p-context/unet3d/seed_0/fold_0", "unet3d", 0, profile="p")
    with pytest.raises(ConfigError, match=r"holds runs of context models \(unet3d, unet_25d3\) "
                                          r"while .*p-context holds the context study too"):
        aggregate("p", runs, out, n_boot=20)


def test_a_model_with_a_code_version_of_its_own_is_counted_apart(tmp_path, capsys):
    """The plateau re-run's 3D U-Net runs from a pin of its own (CODE.unet3d): its runs of that
    fingerprint are counted apart, the main study keeps one version, and a run of any third
    version is refused as before; ``spineseg aggregate --pins`` reads the pins."""
    own = "e" * 64
    runs = make_fake_study(tmp_path / "runs", profile="p", models=("unet", "miniseg"),
                           seeds=(0,), losses=())
    for group in ("p", "p-half"):
        write_fake_run(runs / group / "unet3d/seed_0/fold_0", "unet3d", 0, profile="p",
                       fingerprint=own)
    write_fake_run(runs / "p-half/unet/seed_0/fold_0", "unet", 0, profile="p")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="the runs come from 2 versions of the code"):
        aggregate("p", runs, out, n_boot=20)
    bundle = aggregate("p", runs, out, n_boot=20, own_code={"unet3d": own})
    assert bundle["source_fingerprint"] == FAKE_FINGERPRINT
    assert bundle["source_fingerprints"] == {FAKE_FINGERPRINT: 3}  # unet, miniseg, half's unet
    assert bundle["own_code"] == {"unet3d": {"source_fingerprint": own, "runs": 2}}
    context = bundle["studies"]["context"]
    assert context["source_fingerprint"] is None  # its 2D baseline from the study's version
    assert context["source_fingerprints"] == {FAKE_FINGERPRINT: 1, own: 1}
    assert "own_code" not in aggregate("p", make_fake_study(tmp_path / "r2", profile="p",
                                                            models=("unet",), seeds=(0,),
                                                            losses=()), tmp_path / "o2", n_boot=20)
    pins = tmp_path / "plateau"
    pins.mkdir()
    (pins / "CODE.unet3d").write_text(f"{'1' * 40} {own}\n")
    assert main(["aggregate", "--profile", "p", "--runs-dir", str(runs), "--out", str(out),
                 "--n-boot", "20", "--pins", str(pins)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(
        f"code {FAKE_FINGERPRINT[:12]} (3 runs); unet3d {own[:12]} (2 runs) (its own pin)")
    write_fake_run(runs / "p/unet3d/seed_1/fold_0", "unet3d", 1, profile="p", fingerprint="d" * 64)
    with pytest.raises(ConfigError, match="the runs come from 2 versions of the code"):
        aggregate("p", runs, out, n_boot=20, own_code={"unet3d": own})


def test_commit_fingerprint_hashes_the_commit_not_the_work_tree(copy):
    """A commit's fingerprint is that of its files, whatever the work tree holds since."""
    import subprocess

    def git(*args):
        subprocess.run(["git", "-C", str(copy), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    at_commit = source_fingerprint(copy)
    (copy / "spineseg_core/losses.py").write_text("# changed after the commit\n")
    assert source_fingerprint(copy) != at_commit
    assert commit_fingerprint("HEAD", copy) == at_commit
    with pytest.raises(ConfigError, match="nosuchcommit"):
        commit_fingerprint("nosuchcommit", copy)


def test_the_plateau_records_are_the_pinned_commits_code():
    """Issue 25: the re-run's records (results/plateau/runs, the budget seed and what follows)
    carry the fingerprint of the commit results/plateau/CODE pins, except those of a model
    with a pin of its own (CODE.<model>, study.schedule.mend_pins), which carry that one's; the
    records that pin superseded (results/plateau/superseded/<commit[:12]>) carry the
    fingerprint of the study's pin they were made from."""
    import subprocess

    from spineseg_core.study.schedule import SUPERSEDED, mend_pins

    plateau = REPO / "results/plateau"
    pin = plateau / "CODE"
    if not pin.is_file():
        pytest.skip("the budget seed has not pinned its code yet")
    commit, fingerprint = pin.read_text().split()
    own = mend_pins(plateau)
    for c in [commit, *(c for c, _ in own.values())]:
        if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{c}^{{commit}}"],
                          capture_output=True).returncode != 0:
            pytest.skip(f"commit {c[:12]} is not in this clone (shallow?)")
    assert commit_fingerprint(commit) == fingerprint
    for model, (c, fp) in own.items():
        assert commit_fingerprint(c) == fp, model
    for params in sorted((plateau / "runs").rglob("params.json")):
        got = json.loads(params.read_text())["env"]["source_fingerprint"]
        model = params.parents[2].name
        assert got == (own[model][1] if model in own else fingerprint), params
    for params in sorted((plateau / SUPERSEDED).rglob("params.json")):
        got = json.loads(params.read_text())["env"]["source_fingerprint"]
        assert got == fingerprint and params.relative_to(plateau / SUPERSEDED).parts[0] == (
            commit[:12]), params

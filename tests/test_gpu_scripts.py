"""The GPU scripts on the CPU: the check's one-line refusals, its skips-fail rule, the wheel
folder's pins and limits, and the GPU study's plan, version check and time budget
(``scripts/gpu_check.sh``, ``gpu_check.py``, ``gpu_wheels.py``, ``gpu_study.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from script_helpers import load_script
from spineseg_core.errors import ConfigError
from spineseg_core.fingerprint import source_fingerprint

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"


_script = load_script
gpu_wheels = _script("gpu_wheels")
gpu_study = _script("gpu_study")


def _run(args, env=None, cwd=REPO, timeout=300):
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          check=False, env={**os.environ, **(env or {})})


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU passes the probe")
def test_check_without_cuda_fails_at_once_with_one_line(tmp_path):
    venv = tmp_path / "venv"
    done = _run(["bash", str(SCRIPTS / "gpu_check.sh")],
                env={"CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable, "VENV": str(venv)})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("gpu_check: CUDA is not usable: torch ")
    assert "CUDA_VISIBLE_DEVICES=''" in done.stderr
    assert not venv.exists()  # nothing installed, nothing measured
    assert "part" not in done.stdout


def test_check_without_torch_names_the_interpreter(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -S -I \"$@\"\n")  # no site: no torch
    fake.chmod(0o755)
    done = _run(["bash", str(SCRIPTS / "gpu_check.sh")],
                env={"PYTHON": str(fake), "VENV": str(tmp_path / "venv")})
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "cannot import torch" in done.stderr and "set PYTHON" in done.stderr


def test_check_refuses_an_unknown_option():
    done = _run(["bash", str(SCRIPTS / "gpu_check.sh"), "--fast"])
    assert done.returncode == 1
    assert done.stderr == ("gpu_check: unknown option --fast: expected --dry-run and/or "
                           "--install-only\n")


def _device_tests(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "test_device.py"
    path.write_text("import pytest\n\npytestmark = pytest.mark.cuda\n\n" + body)
    return path


@pytest.mark.parametrize("allow, expected", [(False, 1), (True, 0)])
def test_a_skipped_device_test_fails_the_check(tmp_path, allow, expected):
    path = _device_tests(tmp_path, "def test_runs():\n    pass\n\n"
                                   "def test_skips():\n    pytest.skip('no CUDA')\n")
    done = _run([sys.executable, str(SCRIPTS / "gpu_check.py"), "tests", str(path),
                 *(["--allow-skips"] if allow else [])], cwd=tmp_path)
    assert done.returncode == expected, done.stdout + done.stderr
    if not allow:
        assert ("gpu_check: 1 device test(s) skipped, which counts as failed here: "
                "test_device.py::test_skips") in done.stderr


def test_the_check_fails_when_no_device_test_ran(tmp_path):
    path = _device_tests(tmp_path, "")
    done = _run([sys.executable, str(SCRIPTS / "gpu_check.py"), "tests", str(path)],
                cwd=tmp_path)
    assert done.returncode != 0


def test_wheel_pins_come_from_the_constraints():
    text = "Deprecated==1.3.1\nnibabel==5.4.2  # a comment\nSimpleITK==2.5.7\ntorchio==1.2.1\n"
    assert gpu_wheels.pins(text, ("nibabel", "torchio", "simpleitk", "deprecated")) == {
        "nibabel": "nibabel==5.4.2", "torchio": "torchio==1.2.1",
        "simpleitk": "simpleitk==2.5.7", "deprecated": "deprecated==1.3.1"}
    with pytest.raises(SystemExit, match="^gpu_wheels: constraints.txt pins no version of "
                                         "nibabel$"):
        gpu_wheels.pins("simpleitk==2.5.7\ntorchio==1.2.1\n")
    # the project's own constraints pin every wheel the folder holds: NiBabel alone, the GPU
    # path needing neither TorchIO nor its SimpleITK (tests/test_no_torchio.py)
    assert gpu_wheels.pins((REPO / "constraints.txt").read_text()) == {
        "nibabel": "nibabel==5.4.2"}


def test_travel_size_counts_tracked_and_unignored_files_only(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _run(["git", "init", "-q", str(repo)])
    (repo / ".gitignore").write_text("/.gpu-wheels/\n")           # 14 bytes, untracked
    (repo / "tracked.csv").write_bytes(b"x" * 1000)
    _run(["git", "-C", str(repo), "add", "tracked.csv"])
    (repo / "new.txt").write_bytes(b"y" * 200)                     # untracked, not ignored
    (repo / ".gpu-wheels").mkdir()
    (repo / ".gpu-wheels" / "a.whl").write_bytes(b"z" * 5000)      # ignored: carried apart
    assert gpu_wheels.tree_bytes(repo) == 1000 + 200 + 14
    assert gpu_wheels.travel_line(60 * 2**20, 3 * 2**20) == (
        "gpu_wheels: tree 60.0 MiB + wheels 3.0 MiB = 63.0 MiB of the device tool's 64 MiB "
        "(1.0 MiB left)")
    assert gpu_wheels.travel_line(63 * 2**20, 3 * 2**20).endswith(
        "(OVER by 2.0 MiB: it will refuse to send them)")


def _wheel(folder: Path, name: str, size: int = 10) -> None:
    (folder / name).write_bytes(b"x" * size)


def test_wheel_folder_refuses_torch_two_versions_and_excess(tmp_path):
    _wheel(tmp_path, "torchio-1.2.1-py3-none-any.whl", 1000)
    _wheel(tmp_path, "nibabel-5.4.2-py3-none-any.whl", 2000)
    assert gpu_wheels.check_folder(tmp_path) == pytest.approx(0.003)
    with pytest.raises(SystemExit, match="over the 0.002 MB limit"):
        gpu_wheels.check_folder(tmp_path, limit_mb=0.002)
    _wheel(tmp_path, "nibabel-5.4.1-py3-none-any.whl")
    with pytest.raises(SystemExit, match="more than one wheel of nibabel"):
        gpu_wheels.check_folder(tmp_path)
    (tmp_path / "nibabel-5.4.1-py3-none-any.whl").unlink()
    for name in ("torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl",
                 "nvidia_cudnn_cu13-9.0-py3-none-manylinux_2_27_x86_64.whl",
                 "triton-3.6.0-cp312-cp312-manylinux_2_27_x86_64.whl"):
        _wheel(tmp_path, name)
        with pytest.raises(SystemExit, match=f"refusing {name}"):
            gpu_wheels.check_folder(tmp_path)
        (tmp_path / name).unlink()


def _record(records: Path, group: str, model: str, fingerprint: str) -> None:
    run = records / group / model / "seed_0" / "fold_0"
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"env": {"source_fingerprint": fingerprint}}))
    (run / "metrics.json").write_text("{}")


def test_gpu_study_plans_the_unrecorded_runs_in_the_reruns_order(tmp_path):
    records = tmp_path / "records"
    _record(records, "smoke", "unet", source_fingerprint())
    parts = (gpu_study.Part(seeds=(0,)),
             gpu_study.Part(seeds=(0,), models=("danet",), variant="os32",
                            params={"model_kwargs": {"output_stride": 32}}))
    todo = gpu_study.planned("smoke", parts, tmp_path / "runs", records, {"device": "cpu"},
                             models=["unet", "miniseg", "danet"])
    assert [(p.spec.group, p.spec.model) for p, _ in todo] == [
        ("smoke", "miniseg"), ("smoke", "danet"), ("smoke-os32", "danet")]
    extra = dict(todo[-1][1])
    assert gpu_study.run_config(todo[-1][0].spec, extra).model_kwargs == {"output_stride": 32}


def test_gpu_study_makes_the_plateau_runs_seed_first(tmp_path):
    """The plan: the budget seed's runs (B/2 then B per model, cheapest first), then the
    re-run's, without the 3D model the lent machine cannot train; the half runs carry their
    budget in steps, which the run's configuration takes."""
    from spineseg_core.study.schedule import SEED_ORDER

    parts = gpu_study.plan_parts(2940)
    first = [(p.models[0], p.variant, dict(p.params)) for p in parts[:4]]
    assert first == [("miniseg", "half", {"steps": "1470"}), ("miniseg", None, {}),
                     ("unet", "half", {"steps": "1470"}), ("unet", None, {})]
    seed = [p for p in parts if p.seeds == (0,) and p.variant in ("half", None) and not p.losses]
    assert {p.models[0] for p in seed} == set(SEED_ORDER) - {"unet3d"}
    assert not any(p.models == ("unet3d",) for p in parts)
    assert any(p.seeds == (4,) for p in parts)  # the last part: seeds 3 and 4
    todo = gpu_study.planned("smoke", parts[:2], tmp_path / "runs", tmp_path / "records",
                             {"device": "cpu"})
    assert gpu_study.run_config(todo[0][0].spec, dict(todo[0][1])).steps == 1470
    assert todo[0][0].spec.group == "smoke-half"
    # a seed pair one of whose runs is recorded stays with the device that made it
    records = tmp_path / "records"
    _record(records, "cpu-half", "miniseg", source_fingerprint())
    left = gpu_study.plan_parts(2940, records_dir=records)
    assert [p.models[0] for p in left[:2]] == ["unet", "unet"]
    assert not any(p.models == ("miniseg",) and p.seeds == (0,) and not p.losses
                   and p.variant in ("half", None) for p in left)
    # a raised budget: both runs of a pair carry it
    raised = gpu_study.plan_parts(5880, steps_given=True)
    assert [dict(p.params) for p in raised[:2]] == [{"steps": "2940"}, {"steps": "5880"}]


def test_gpu_study_refuses_a_tree_that_is_not_the_pinned_code(tmp_path):
    pin = tmp_path / "CODE"
    with pytest.raises(ConfigError, match="missing; the budget seed"):
        gpu_study.check_pin(pin)
    pin.write_text(f"{'a' * 40} {source_fingerprint()}\n")
    gpu_study.check_pin(pin)
    pin.write_text(f"{'a' * 40} {'0' * 64}\n")
    with pytest.raises(ConfigError, match="the runs at the plateau budget 000000000000 "
                                          "\\(commit aaaaaaa\\): run them from that commit"):
        gpu_study.check_pin(pin)


def test_gpu_study_refuses_records_of_another_code_version(tmp_path):
    records = tmp_path / "records"
    _record(records, "cpu", "unet", source_fingerprint())
    gpu_study.check_one_version(records, ["cpu", "cpu-os32"])
    _record(records, "cpu", "miniseg", "0123456789abcdef")
    with pytest.raises(ConfigError, match=r"another source fingerprint \(0123456789ab \(1 run\); "
                                          r"this tree: "):
        gpu_study.check_one_version(records, ["cpu"])
    gpu_study.check_one_version(records, ["cpu-os32"])  # another group: not mixed
    # the records of a model run from a pin of its own are not this tree's to match
    gpu_study.check_one_version(records, ["cpu"], own=["miniseg"])
    with pytest.raises(ConfigError, match="another source fingerprint"):
        gpu_study.check_one_version(records, ["cpu"], own=["unet"])


def test_gpu_study_leaves_out_the_models_with_a_pin_of_their_own():
    every = gpu_study.plan_parts(200)
    mine = gpu_study.plan_parts(200, own=["miniseg"])
    assert any("miniseg" in (p.models or ()) for p in every)
    assert not any("miniseg" in (p.models or ()) for p in mine)
    assert len(mine) < len(every)
    assert [p for p in every if "miniseg" not in (p.models or ())] == list(mine)


def _todo(tmp_path: Path, n: int):
    return gpu_study.planned("smoke", (gpu_study.Part(seeds=tuple(range(n))),),
                             tmp_path / "runs", tmp_path / "records", {"device": "cpu"},
                             models=["unet"])


def test_gpu_study_launches_nothing_it_cannot_finish_in_time(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(gpu_study, "_child", lambda *a: started.append(a))
    monkeypatch.setattr(gpu_study, "warm_data", lambda *a: started.append(a))
    done = gpu_study.run_all(_todo(tmp_path, 2), tmp_path / "runs", tmp_path / "records",
                             jobs=2, budget_s=100, run_estimate_s=120, threads=1,
                             say=lambda line: None)
    assert started == [] and len(done["not_started"]) == 2 and not done["recorded"]


def test_gpu_study_ends_runs_at_the_budget_without_a_record(tmp_path, monkeypatch):
    def child(params, log, threads):
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])

    monkeypatch.setattr(gpu_study, "_child", child)
    monkeypatch.setattr(gpu_study, "warm_data", lambda *a: None)
    lines = []
    done = gpu_study.run_all(_todo(tmp_path, 3), tmp_path / "runs", tmp_path / "records",
                             jobs=2, budget_s=1.0, run_estimate_s=0.1, threads=1,
                             say=lines.append, poll_s=0.2)
    assert [s.seed for s in done["stopped"]] == [0, 1]
    assert [s.seed for s in done["not_started"]] == [2]
    assert not done["recorded"] and not (tmp_path / "records").exists()
    assert sum("at the budget (no record)" in line for line in lines) == 2


def test_gpu_study_warms_each_data_set_once(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "tests"))
    from _tiny_data import make_tiny_dataset
    from spineseg_core.training.config import resolve_config

    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))
    cfg = resolve_config("smoke", data_dir=make_tiny_dataset(tmp_path / "data", cases=4),
                         out_dir=tmp_path / "run", image_size=32)
    warmed, lines = set(), []
    gpu_study.warm_data(cfg, warmed, lines.append)
    gpu_study.warm_data(cfg, warmed, lines.append)
    assert len(warmed) == 1 and len(lines) == 1 and lines[0].startswith("data of smoke at 32 px")
    assert any((tmp_path / "cache" / "volumes").rglob("*")), "no volume cache written"


@pytest.mark.slow
def test_gpu_study_dry_run_records_two_runs_and_then_skips_them():
    done = _run([sys.executable, str(SCRIPTS / "gpu_study.py"), "--dry-run"], timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gpu_study: 2 recorded, 0 failed, 0 stopped, 0 not started" in done.stdout
    assert ("dry run: 2 recorded, skipped when planned again, and 3 hard-case scores"
            in done.stdout)


def test_gpu_study_archive_holds_the_records_and_their_groups_test_sets(tmp_path):
    import tarfile

    records = tmp_path / "records"
    _record(records, "cpu", "unet", "f")
    _record(records, "cpu-hard-fov_cut", "unet", "f")
    _record(records, "cpu", "miniseg", "f")  # not written by this study: not packed
    (records / "cpu" / "test_set.npz").write_bytes(b"t")
    out = tmp_path / "out" / "records.tar.gz"
    gpu_study.archive(records, [records / "cpu" / "unet" / "seed_0" / "fold_0",
                                records / "cpu-hard-fov_cut" / "unet" / "seed_0" / "fold_0"],
                      out)
    with tarfile.open(out) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
    assert names == ["cpu-hard-fov_cut/unet/seed_0/fold_0/metrics.json",
                     "cpu-hard-fov_cut/unet/seed_0/fold_0/params.json",
                     "cpu/test_set.npz",
                     "cpu/unet/seed_0/fold_0/metrics.json",
                     "cpu/unet/seed_0/fold_0/params.json"]


def test_the_train_part_leaves_out_the_models_past_its_budget(capsys):
    gpu_check = _script("gpu_check")
    frame = gpu_check.train_rows(["miniseg", "unet", "pspnet"], torch.device("cpu"), 32,
                                 steps=1, warmup=0, batch=1, budget_s=0.0)
    assert frame["model"].tolist() == ["miniseg"]
    assert frame.loc[0, "batch"] == 1 and frame.loc[0, "size"] == 32
    assert ("train: 1 of 3 models measured; left out unet, pspnet: the next would pass the "
            "part's 0 s") in capsys.readouterr().out

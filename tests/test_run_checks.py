"""Bad input at the entry points is one line, before anything runs: the study's JSON text
parameters, the device (checked where the run executes, CUDA faked as in
tests/test_gpu_path.py), the paper profile without data, and the Slurm resources against a
faked ``sinfo``."""

from __future__ import annotations

import argparse
import subprocess

import pytest
import torch

from _tiny_data import make_tiny_dataset
from spineseg_core.cli import main
from spineseg_core.commands import main as main_command
from spineseg_core.data import prepare as prepare_mod
from spineseg_core.errors import ConfigError
from spineseg_core.study import slurm
from spineseg_core.study.slurm import Partitions, SlurmOptions, check_cluster, default_mem_gb
from spineseg_core.training import loop as train_mod
from spineseg_core.training.config import resolve_config
from spineseg_core.training.device import resolve_device


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINESEG_CACHE", str(tmp_path / "cache"))


def _no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _fake_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _study(tmp_path, *argv: str) -> list[str]:
    return ["study", "--models", "unet", "--runs-dir", str(tmp_path / "runs"), "--dry-run",
            *argv]


# --- 2. the study's text parameters: the notebook's JSON parser ------------------------------

@pytest.mark.parametrize("key, text", [("overrides", "{epochs: 2}"),
                                       ("model_kwargs", '{"base_width": 8'),
                                       ("overrides", "[1, 2]")])
def test_bad_json_of_a_study_parameter_is_one_line_naming_it(tmp_path, capsys, key, text):
    assert main(_study(tmp_path, "--profile", "smoke", "-p", key, text)) == 2
    line = _one_line(capsys)
    assert line.startswith(f"spineseg study: error: -p {key}: expected a mapping")
    assert text in line


def test_json_study_parameters_reach_the_plan(tmp_path, capsys):
    assert main(_study(tmp_path, "--profile", "smoke", "-p", "overrides", '{"epochs": 3}',
                       "-p", "model_kwargs", '{"base_width": 8}')) == 0
    assert "1 runs: 1 new" in capsys.readouterr().out


def test_bad_json_names_where_the_syntax_breaks():
    from spineseg_core.training.config import parse_mapping

    with pytest.raises(ConfigError, match=r"^-p overrides: .*not JSON: Expecting property name "
                                          r"enclosed in double quotes: line 1 column 2"):
        parse_mapping("-p overrides", "{epochs: 2}")


# --- 3. the device, checked where the run executes -------------------------------------------

def test_cuda_without_a_gpu_is_one_line(monkeypatch):
    _no_cuda(monkeypatch)
    with pytest.raises(ConfigError, match=r"^device: 'cuda' requested but this machine has no "
                                          r"usable CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto", "cpu").type == "cpu"
    assert resolve_device("cpu", "paper").type == "cpu"  # asked for explicitly
    with pytest.raises(ConfigError, match=r"^device: the paper profile is sized for a GPU .* "
                                          r"pass device 'cpu'"):
        resolve_device("auto", "paper")
    _fake_cuda(monkeypatch)
    assert resolve_device("auto", "paper").type == "cuda"


def test_a_run_asking_for_cuda_on_a_node_without_one_never_trains(tmp_path, monkeypatch):
    _no_cuda(monkeypatch)
    data = make_tiny_dataset(tmp_path / "data", cases=3, slices=2, size=32)
    cfg = resolve_config("smoke", data_dir=data, out_dir=tmp_path / "run", device="cuda",
                         model_kwargs={"base_width": 4, "depth": 2})  # resolved anywhere
    monkeypatch.setattr(train_mod, "prepare_data", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ConfigError, match="^device: 'cuda' requested"):
        train_mod.run_training(cfg)
    assert not (tmp_path / "run").exists()


def test_paper_with_auto_and_no_gpu_refuses_before_training(tmp_path, monkeypatch, capsys):
    _no_cuda(monkeypatch)
    data = make_tiny_dataset(tmp_path / "data", cases=3, slices=2, size=32)
    argv = ["train", "--profile", "paper", "--data-dir", str(data), "--out-dir",
            str(tmp_path / "run")]
    assert main(argv) == 2
    assert _one_line(capsys).startswith("spineseg train: error: device: the paper profile is "
                                        "sized for a GPU")
    assert not (tmp_path / "run").exists()
    # the local study says so before its first run; on Slurm the node decides
    assert main(_study(tmp_path, "--profile", "paper", "-p", "data_dir", str(data))) == 2
    assert "device: the paper profile is sized for a GPU" in _one_line(capsys)
    assert main(_study(tmp_path, "--profile", "paper", "-p", "data_dir", str(data),
                       "-p", "device", "cpu")) == 0


def test_cuda_is_submitted_from_a_login_node_without_a_gpu(tmp_path, monkeypatch, capsys):
    _no_cuda(monkeypatch)
    monkeypatch.setattr(slurm, "cluster_partitions", lambda: None)  # no sinfo here
    data = tmp_path / "data"
    data.mkdir()
    argv = _study(tmp_path, "--profile", "paper", "-p", "data_dir", str(data), "-p", "device",
                  "cuda", "--executor", "slurm")
    assert main(argv) == 0
    assert "1 runs: 1 new" in capsys.readouterr().out
    # a GPU profile on a CPU partition under auto would refuse on every node: said here
    assert main([*argv[:-5], "--executor", "slurm", "--slurm-gpus", "0"]) == 2
    assert _one_line(capsys).startswith("spineseg study: error: --slurm-gpus 0: the paper "
                                        "profile is sized for a GPU")


@pytest.mark.parametrize("gpu, device", [(True, "cuda"), (False, "cpu")])
def test_main_scores_hard_cases_on_the_main_jobs_device(tmp_path, monkeypatch, gpu, device):
    (_fake_cuda if gpu else _no_cuda)(monkeypatch)
    monkeypatch.setattr(prepare_mod, "data_root", lambda cfg: tmp_path / "phantom")
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(main_command, "_step", lambda title, args: calls.append((title, args)))
    parser = argparse.ArgumentParser()
    main_command.add_arguments(parser)
    args = parser.parse_args(["--profile", "smoke", "--runs-dir", str(tmp_path / "runs"),
                              "--results-dir", str(tmp_path / "results"), "--no-bench",
                              "--no-book"])
    assert main_command.run(args) == 0
    steps = dict(calls)
    for title in ("hard cases", "efficiency"):
        argv = steps[title]
        assert argv[argv.index("--device") + 1] == device, title


# --- 4. the paper profile without data ------------------------------------------------------

def test_paper_profile_without_data_refuses_unless_the_phantom_is_asked_for(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"^data_dir: the paper profile trains on the real "
                                          r"data .* phantom=True .*\(264 cases at 880 px"):
        resolve_config("paper")
    assert resolve_config("paper", phantom=True).data_dir is None
    assert resolve_config("smoke").phantom is False  # the small profiles: the phantom as ever
    with pytest.raises(ConfigError, match=r"^phantom: True .* data_dir .* give one of them"):
        resolve_config("paper", phantom=True, data_dir=tmp_path)
    assert main(["train", "--profile", "paper"]) == 2
    assert _one_line(capsys).startswith("spineseg train: error: data_dir: the paper profile")
    assert main(_study(tmp_path, "--profile", "paper")) == 2
    assert _one_line(capsys).startswith("spineseg study: error: data_dir: the paper profile")


# --- 7. Slurm memory from the profile, resources against sinfo ------------------------------

SINFO = ("debug*|(null)|16|20000\n"
         "gpu|gpu:a100:4(S:0-1)|64|512000\ngpu|gpu:a100:2|32|256000+\n")


@pytest.fixture
def fake_sinfo(monkeypatch):
    asked: list[list[str]] = []

    def run(command, timeout=30):
        asked.append(list(command))
        return subprocess.CompletedProcess(command, 0, SINFO, "")

    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(slurm, "_run", run)
    return asked


def test_memory_follows_the_profile():
    assert (default_mem_gb("smoke"), default_mem_gb("cpu"), default_mem_gb("paper")) == (4, 6, 32)
    parts = Partitions.parse(SINFO)
    assert parts.cpus == {"debug": 16, "gpu": 64}
    assert parts.mem_mb == {"debug": 20000, "gpu": 512000}
    assert parts.gpus("gpu") == 4 and parts.gpus("debug") == 0
    assert Partitions.parse("debug*|(null)\n").cpus == {}  # older format: nothing to compare


def test_impossible_requests_fail_against_sinfo():
    parts = Partitions.parse(SINFO)
    check_cluster(SlurmOptions(gpus=0, mem_gb=4, cpus_per_task=16), parts)
    check_cluster(SlurmOptions(gpus=4, partition="gpu", mem_gb=256, cpus_per_task=64), parts)
    with pytest.raises(ConfigError, match=r"^--slurm-mem-gb 32: partition debug's largest node "
                                          r"has 20000 MB of memory \(sinfo\); ask for 19 GB"):
        check_cluster(SlurmOptions(gpus=0, mem_gb=32), parts)
    with pytest.raises(ConfigError, match=r"^--slurm-cpus 32: partition debug's largest node "
                                          r"has 16 CPUs"):
        check_cluster(SlurmOptions(gpus=0, mem_gb=4, cpus_per_task=32), parts)
    with pytest.raises(ConfigError, match=r"^--slurm-gpus 8: partition gpu's largest node has "
                                          r"4 GPUs"):
        check_cluster(SlurmOptions(gpus=8, partition="gpu"), parts)


def test_study_on_a_small_node_gets_the_profiles_memory(tmp_path, capsys, fake_sinfo):
    argv = _study(tmp_path, "--profile", "smoke", "--executor", "slurm", "--slurm-cpus", "2")
    assert main(argv) == 0  # 4 GB by default: fits the 20 GB node
    assert fake_sinfo[-1] == ["sinfo", "--noheader", "--format=%P|%G|%c|%m"]
    assert main([*argv, "--slurm-mem-gb", "32"]) == 2
    assert _one_line(capsys).startswith("spineseg study: error: --slurm-mem-gb 32: partition "
                                        "debug's largest node has 20000 MB")

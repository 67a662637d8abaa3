"""``scripts/device_slim.py`` in a temporary git repository: ``out`` takes the tracked files of
its folders out of the working tree and nothing else, refuses uncommitted changes there, and
``back`` restores every byte; the size line counts what is on disk."""

from __future__ import annotations

import pytest

from script_helpers import commit_all, git as _git, load_script

slim = load_script("device_slim")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    files = {"results/cpu/runs/cpu/unet/seed_0/fold_0/predictions.npz": b"\x00" * 3000,
             "results/cpu/runs/cpu/unet/seed_0/fold_0/metrics.json": b"{}",
             "results/cpu/levels/levels.csv.gz": b"\x01" * 500,
             "results/cpu/models.csv": b"model\nunet\n",
             "results/plateau/CODE": b"pin\n"}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return commit_all(root, monkeypatch), files


def test_out_and_back_lose_nothing(repo):
    root, files = repo
    before = slim.tree_bytes(root)
    assert slim.take_out(root) == 3
    assert not (root / "results/cpu/runs").exists() and not (root / "results/cpu/levels").exists()
    assert (root / "results/cpu/models.csv").is_file() and (root / "results/plateau/CODE").is_file()
    assert slim.tree_bytes(root) == before - 3000 - 2 - 500
    assert _git(root, "diff", "--cached", "--name-only") == ""  # nothing staged
    assert slim.put_back(root) == 3
    assert {n: (root / n).read_bytes() for n in files} == files
    assert _git(root, "status", "--porcelain") == ""
    assert slim.put_back(root) == 0  # nothing missing: nothing to do


def test_out_refuses_uncommitted_changes_there(repo, capsys):
    root, _ = repo
    (root / "results/cpu/runs/cpu/unet/seed_0/fold_0/metrics.json").write_text('{"dice": 1}')
    with pytest.raises(SystemExit, match="metrics.json: uncommitted changes under results/cpu/runs"):
        slim.take_out(root)
    assert (root / "results/cpu/runs/cpu/unet/seed_0/fold_0/predictions.npz").is_file()
    (root / "results/cpu/models.csv").write_text("changed\n")  # outside: no matter
    _git(root, "checkout", "--", "results/cpu/runs")
    assert slim.take_out(root) == 3


def test_the_size_line_counts_the_wheels_folder(repo):
    root, _ = repo
    tree = slim.tree_bytes(root)
    assert slim.size_line(root) == slim.travel_line(tree, 0, who="device_slim")
    (root / ".gpu-wheels").mkdir()
    (root / ".gpu-wheels" / "a.whl").write_bytes(b"\x00" * 2048)
    (root / ".git" / "info" / "exclude").write_text(".gpu-wheels/\n")  # ignored, as here
    assert slim.size_line(root) == slim.travel_line(tree, 2048, who="device_slim")
    assert slim.size_line(root).startswith("device_slim: tree ")

"""``study.commits.commit_paths`` in a temporary git repository: it commits the paths given
alone (additions, changes, removals), leaves other staged work out, commits nothing when
nothing changed, keeps a message with quotes intact, and waits for the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import pytest

from script_helpers import commit_all, git
from spineseg_core.study.commits import commit_paths


def _git(repo, *args: str) -> str:
    return git(repo, *args).strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "results" / "a").mkdir(parents=True)
    (root / "results" / "a" / "old.csv").write_text("x\n1\n")
    (root / "notes.md").write_text("notes\n")
    return commit_all(root, monkeypatch)


def test_it_commits_the_paths_alone_with_removals(repo, tmp_path):
    (repo / "results" / "a" / "old.csv").unlink()
    (repo / "results" / "a" / "new.csv").write_text("x\n2\n")
    (repo / "notes.md").write_text("changed notes\n")
    _git(repo, "add", "notes.md")  # someone's staged work, not the study's
    message = 'results: U-Net at B = 5880 ("plateaued"); $HOME `stays`'
    assert commit_paths(repo, ["results/a"], message, str(tmp_path / "lock"))
    assert _git(repo, "log", "-1", "--format=%s") == message
    assert sorted(_git(repo, "show", "--no-renames", "--name-status", "--format=",
                       "HEAD").splitlines()) == [
        "A\tresults/a/new.csv", "D\tresults/a/old.csv"]
    assert _git(repo, "diff", "--cached", "--name-only") == "notes.md"


def test_nothing_changed_commits_nothing(repo, tmp_path):
    assert commit_paths(repo, ["results/a"], "nothing", str(tmp_path / "lock"))
    assert _git(repo, "log", "--format=%s").splitlines() == ["init"]
    with pytest.raises(ValueError, match="no paths"):
        commit_paths(repo, [], "nothing", str(tmp_path / "lock"))


def test_it_waits_for_the_lock(repo, tmp_path):
    lock = tmp_path / "lock"
    holder = subprocess.Popen(["flock", str(lock), "sh", "-c", "echo held; exec sleep 60"],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # the lock is taken from here on
        (repo / "results" / "a" / "new.csv").write_text("x\n2\n")
        worker = threading.Thread(target=commit_paths,
                                  args=(repo, ["results/a"], "late", str(lock)))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive()  # still waiting for the lock
        assert _git(repo, "log", "-1", "--format=%s") == "init"
    finally:  # the sleep inherits the lock: end flock and it together
        os.killpg(holder.pid, signal.SIGTERM)
        holder.wait()
    worker.join(timeout=30)
    assert not worker.is_alive() and _git(repo, "log", "-1", "--format=%s") == "late"

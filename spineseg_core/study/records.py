"""A run's committed record: the small files of its run folder, kept in git.

A study on the cpu profile outlasts one sitting, and the next sitting may be on another machine
with only what was committed. So each finished run leaves a *record* beside the results bundle,
``<records>/<group>/<model>/seed_<s>/fold_<f>/``, in the run-folder layout
(:class:`~spineseg_core.training.run_folder.RunFolder`) without its checkpoints:

- ``params.json``, ``history.csv``, ``metrics.json``, ``per_class.csv``, ``per_case.csv``
  copied as they are;
- ``predictions.npz`` reduced to what differs between runs: ``pred`` (uint8), ``case_id``,
  ``slice_index`` and the per-slice ``dice``, compressed (about 0.3 MB at 128 px, against
  15 MB for the run's own file);
- what every run of a group shares, its test slices, once per group in ``test_set.npz``:
  ``case_id``, ``slice_index``, ``mask`` and, for the profile's own group only (the book draws
  no image of a loss or side-study group), ``image`` quantised to uint8 for display
  (:data:`IMAGE_LEVELS` levels over the images' range, ``image_range``; [0, 1] for the
  study's normalised images).

``spineseg study --records-dir`` skips a run whose record is present and records each run as it
finishes; ``spineseg record`` records the finished runs of a runs folder; ``spineseg aggregate
--runs-dir <records>`` rebuilds the bundle from records alone (:func:`load_predictions` puts a
record's predictions and its group's test set back together).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from spineseg_core import io
from spineseg_core.errors import DataError
from spineseg_core.training.run_folder import RunFolder, find_runs

TEST_SET = "test_set.npz"
"""The group's shared test slices, in the group folder of the records."""

PRED_KEYS: tuple[str, ...] = ("pred", "case_id", "slice_index", "dice")
"""What a record keeps of a run's ``predictions.npz``."""

IMAGE_LEVELS = 63
"""Grey levels of the stored display image (uint8 over ``image_range``): 64 levels are plenty
for a grey background under coloured labels and keep the main group's file near 3 MiB."""


def group_dir(record_dir: Path) -> Path:
    """The group folder of a record (``<group>/<model>/seed_<s>/fold_<f>`` → ``<group>``)."""
    return Path(record_dir).parents[2]


def has_record(record_dir: str | Path) -> bool:
    """Whether a finished run's record is there (its ``metrics.json``, copied last)."""
    return RunFolder(Path(record_dir)).is_finished()


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a handle: given a path, numpy would append ".npz"
            np.savez_compressed(fh, **arrays)

    io.write_with(path, write)


def is_main_group(name: str) -> bool:
    """The profile's own group (``cpu``), not a loss or side-study group (``cpu-res256``)."""
    return "-" not in name


def main_group_name(name: str) -> str:
    """The profile's own group beside a group (``cpu-context`` → ``cpu``; ``cpu`` itself)."""
    return name.split("-", 1)[0]


def _test_set(p: dict[str, np.ndarray], with_image: bool = True) -> dict[str, np.ndarray]:
    if not with_image:  # side groups: the book draws no image of theirs (4x the bytes at 256 px)
        return {"case_id": p["case_id"], "slice_index": p["slice_index"],
                "mask": p["mask"].astype(np.uint8)}
    image = p["image"].astype(np.float32)
    lo, hi = float(image.min(initial=0.0)), float(image.max(initial=1.0))
    scale = IMAGE_LEVELS / (hi - lo) if hi > lo else 0.0
    return {"case_id": p["case_id"], "slice_index": p["slice_index"],
            "mask": p["mask"].astype(np.uint8),
            "image": np.round((image - lo) * scale).astype(np.uint8),
            "image_range": np.array([lo, hi], dtype=np.float32)}


def as_side_group(test_set: str | Path) -> bool:
    """Rewrite a group's ``test_set.npz`` in a side group's form, without its display images
    (a main group's records that became a side group: the budget seed's runs at the old B,
    :mod:`spineseg_core.study.budget_raise`); True when it held images. The book draws a side
    group's slices with the main group's images (:func:`main_group_images`)."""
    path = Path(test_set)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    if "image" not in arrays:
        return False
    _write_npz(path, _test_set(arrays, with_image=False))
    return True


def _check_same_slices(path: Path, p: dict[str, np.ndarray]) -> None:
    with np.load(path) as z:
        same = (np.array_equal(z["case_id"], p["case_id"])
                and np.array_equal(z["slice_index"], p["slice_index"])
                and np.array_equal(z["mask"], p["mask"]))
    if not same:
        raise DataError(path, "this group's test set differs from the run's test slices; "
                        "runs of one group must share one test set")


def write_record(run_dir: str | Path, record_dir: str | Path) -> Path:
    """Record the finished run in ``run_dir`` at ``record_dir``; returns ``record_dir``.

    The predictions and the group's test set are written before ``metrics.json``, which goes
    last, so a record is complete once :func:`has_record` says so.
    """
    run, record = RunFolder(Path(run_dir)), RunFolder(Path(record_dir))
    if not run.is_finished():
        raise DataError(run.metrics, "missing: only a finished run can be recorded")
    record.path.mkdir(parents=True, exist_ok=True)
    if run.predictions.is_file():
        with np.load(run.predictions) as z:
            p = {k: z[k] for k in z.files}
        missing = [k for k in (*PRED_KEYS, "image", "mask") if k not in p]
        if missing:
            raise DataError(run.predictions, f"missing arrays {missing}")
        shared = group_dir(record.path) / TEST_SET
        if shared.is_file():
            _check_same_slices(shared, p)
        else:
            _write_npz(shared, _test_set(p, is_main_group(group_dir(record.path).name)))
        _write_npz(record.predictions, {k: p[k] for k in PRED_KEYS})
    names = [n for n in RunFolder.RECORD_FILES if n != run.metrics.name] + [run.metrics.name]
    for name in names:
        src = run.path / name
        if not src.is_file():
            raise DataError(src, "missing: a finished run has every file of its record")
        io.write_with(record.path / name, lambda tmp, src=src: shutil.copyfile(src, tmp))
    return record.path


def load_predictions(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """A run's test predictions with their images and masks: the run folder's own
    ``predictions.npz``, or a record's joined with its group's ``test_set.npz`` (the image
    back in its range, to within half a grey level). ``None`` when the run has none."""
    run = RunFolder(Path(run_dir))
    if not run.predictions.is_file():
        return None
    with np.load(run.predictions) as z:
        p = {k: z[k] for k in z.files}
    if "mask" in p and "image" in p:
        return p
    shared = group_dir(run.path) / TEST_SET
    if not shared.is_file():
        raise DataError(shared, f"missing: the record {run.path} keeps only its predictions")
    with np.load(shared) as z:
        t = {k: z[k] for k in z.files}
    if not (np.array_equal(t["case_id"], p["case_id"])
            and np.array_equal(t["slice_index"], p["slice_index"])):
        raise DataError(shared, f"its slices differ from those of {run.predictions}")
    p["mask"] = t["mask"]
    if "image" in t:  # the main group's records keep a display image; side groups do not
        p["image"] = _display_image(t)
    return p


def _display_image(test_set: dict[str, np.ndarray]) -> np.ndarray:
    """A test set's stored display image back in its range, to within half a grey level."""
    lo, hi = (float(v) for v in test_set["image_range"])
    return (lo + test_set["image"].astype(np.float32) * ((hi - lo) / IMAGE_LEVELS)
            ).astype(np.float16)


def main_group_images(record_dir: str | Path, p: dict[str, np.ndarray]) -> np.ndarray | None:
    """Display images for a side group's record (which keeps none): the main group's
    (:func:`main_group_name`), decoded as :func:`load_predictions` decodes them, when its test
    set holds the same slices on the same grid as ``p``; ``None`` otherwise (a 256 px group,
    or no main group beside it)."""
    group = group_dir(Path(record_dir))
    shared = group.parent / main_group_name(group.name) / TEST_SET
    if not shared.is_file():
        return None
    with np.load(shared) as z:
        t = {k: z[k] for k in z.files}
    same = ("image" in t and np.array_equal(t["case_id"], p["case_id"])
            and np.array_equal(t["slice_index"], p["slice_index"])
            and t["image"].shape == p["pred"].shape)
    return _display_image(t) if same else None


def record_runs(runs_dir: str | Path, records_dir: str | Path,
                rename: dict[str, str] | None = None) -> list[Path]:
    """Record every finished run under ``runs_dir`` that has no record yet in
    ``records_dir`` (same layout; a group may be renamed, ``{"cpu": "cpu-res256"}``).
    Returns the records written."""
    runs_dir, records_dir = Path(runs_dir), Path(records_dir)
    rename = rename or {}
    written = []
    for group in sorted(d for d in runs_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for run in find_runs(group):
            rel = run.relative_to(group)
            target = records_dir / rename.get(group.name, group.name) / rel
            if not has_record(target):
                written.append(write_record(run, target))
    return written

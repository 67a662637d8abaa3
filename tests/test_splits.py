"""Patient-level splits: deterministic, disjoint, folds partition, frozen files reused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spine_files import write_spider_case
from spineseg_core.data import (
    build_datasets,
    get_or_create_splits,
    load_splits,
    make_folds,
    make_split,
    save_splits,
)
from spineseg_core.errors import ConfigError, DataError

IDS = [f"Case{i}" for i in range(2, 27)]


def test_make_split_is_seeded_disjoint_and_8_to_2():
    a, b, c = make_split(IDS, seed=0), make_split(list(reversed(IDS)), seed=0), make_split(IDS, seed=1)
    assert a == b and a != c
    assert len(a.val) == 5 and len(a.train) == 20
    assert not set(a.train) & set(a.val) and set(a.train) | set(a.val) == set(IDS)
    assert make_split(["a", "a", "b"], seed=0).val in (("a",), ("b",))  # ids are deduplicated
    with pytest.raises(ConfigError, match="at least 2 patients"):
        make_split(["only"], seed=0)


def test_folds_partition_the_patients():
    folds = make_folds(IDS, k=5, seed=4)
    assert folds == make_folds(IDS, k=5, seed=4)
    vals = [set(f.val) for f in folds]
    assert sorted(len(v) for v in vals) == [5, 5, 5, 5, 5]
    assert set().union(*vals) == set(IDS) and sum(len(v) for v in vals) == len(IDS)
    for f in folds:
        assert set(f.train) == set(IDS) - set(f.val)
    with pytest.raises(ConfigError, match="k_folds"):
        make_folds(IDS[:3], k=4, seed=0)


def test_save_load_round_trip_in_nnunet_style(tmp_path):
    folds = make_folds(IDS, k=3, seed=0)
    save_splits(tmp_path / "splits_final.json", folds)
    raw = json.loads((tmp_path / "splits_final.json").read_text())
    assert isinstance(raw, list) and set(raw[0]) == {"train", "val"}
    assert load_splits(tmp_path / "splits_final.json") == folds
    (tmp_path / "bad.json").write_text('{"train": []}')
    with pytest.raises(DataError, match="expected a non-empty JSON list") as err:
        load_splits(tmp_path / "bad.json")
    assert err.value.path == tmp_path / "bad.json"


def test_frozen_splits_are_reused_and_checked(tmp_path):
    path = tmp_path / "splits.json"
    first = get_or_create_splits(path, IDS, seed=0)
    assert len(first) == 1 and path.is_file()
    assert get_or_create_splits(path, IDS, seed=123) == first
    with pytest.raises(DataError, match="no longer exist: Case2") as err:
        get_or_create_splits(path, IDS[1:], seed=0)
    assert err.value.path == path
    with pytest.raises(DataError, match="do not cover 1 patient"):
        get_or_create_splits(path, IDS + ["Case99"], seed=0)
    with pytest.raises(ConfigError, match="k_folds=5"):
        get_or_create_splits(path, IDS, seed=0, k=5)
    folds = get_or_create_splits(tmp_path / "f.json", IDS, seed=0, k=5)
    assert len(folds) == 5 and load_splits(tmp_path / "f.json") == folds


def test_spider_series_of_one_patient_stay_together(tmp_path):
    m = np.zeros((6, 6, 3), np.int16)
    m[2:4, 2:4, 1] = 1
    for pid in range(1, 9):
        for seq in ("t1", "t2"):
            write_spider_case(tmp_path / "spider", str(pid), seq, m)
    for fold in range(3):
        b = build_datasets(tmp_path / "spider", image_size=8, cache_dir=tmp_path / "cache",
                           splits_path=tmp_path / "splits.json", seed=0, fold=fold, k_folds=3,
                           sequences=("t1", "t2"), test_split_path=tmp_path / "test.json")
        # 8 patients: 2 held out for test, 6 in 3 folds of 2 -> 8 / 4 / 4 series.
        assert (len(b.train_ids), len(b.val_ids), len(b.test_ids)) == (8, 4, 4)
        train_p = {c.split("_")[0] for c in b.train_ids}
        val_p = {c.split("_")[0] for c in b.val_ids}
        test_p = {c.split("_")[0] for c in b.test_ids}
        assert not train_p & val_p and not test_p & (train_p | val_p)
        assert set(b.split.val) == val_p
        assert {f"{p}_{s}" for p in val_p for s in ("t1", "t2")} == set(b.val_ids)
        assert b.val_volumes[0].mask.max() == 2  # SPIDER L5 (1) -> study L5 (2)

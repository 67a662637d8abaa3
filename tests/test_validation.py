"""Validation that holds the rare levels (issue 24, part 3): the cpu profile's split and the
validation-test gap per class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spineseg_core.errors import DataError
from spineseg_core.study.validation import (
    MIN_VALIDATION_SUBJECTS,
    presence,
    validation_gap,
    validation_subjects,
)
from spineseg_core.training.config import resolve_config


def test_cpu_profile_validates_on_at_least_16_subjects():
    for seed in (0, 1, 2):
        assert validation_subjects(resolve_config("cpu", seed=seed)) >= MIN_VALIDATION_SUBJECTS
    assert validation_subjects(resolve_config("cpu", phantom_cases=40)) == 8  # the old pool
    assert validation_subjects(resolve_config("cpu", k_folds=5, fold=1)) == 16
    assert validation_subjects(resolve_config("smoke")) == 1


def test_presence_and_gap_by_hand():
    # Four validation subjects: class 1 in all, class 9 in one. Test: class 9 in half.
    vol = lambda *labels: np.array(labels, dtype=np.uint8).reshape(1, 1, -1)  # noqa: E731
    val = presence({"a": vol(0, 1), "b": vol(1, 1), "c": vol(1, 0), "d": vol(1, 9)})
    assert val.set_index("class_value")["share"][[1, 9, 2]].tolist() == [1.0, 0.25, 0.0]
    test = pd.DataFrame({"class_value": [1, 9], "subjects_present": [1.0, 0.5]})  # classes.csv
    gap = validation_gap(val, test).set_index("class_value")
    assert gap.loc[9, "validation_share"] == 0.25 and gap.loc[9, "test_share"] == 0.5
    assert gap.loc[9, "p_absent_from_validation"] == pytest.approx(0.5 ** 4)
    assert gap.loc[9, "mostly_absent_from_validation"]
    assert not gap.loc[1, "mostly_absent_from_validation"]
    assert not gap.loc[2, "mostly_absent_from_validation"]  # no test subject holds it either
    pool = pd.DataFrame({"class_value": [9], "share": [0.1]})
    assert validation_gap(val, test, pool).set_index("class_value").loc[
        9, "p_absent_from_validation"] == pytest.approx(0.9 ** 4)
    assert list(gap.reset_index().columns)[:3] == ["class_value", "class_name", "validation_share"]
    with pytest.raises(DataError, match="test: expected columns class_value and share"):
        validation_gap(val, pd.DataFrame({"x": [1]}))

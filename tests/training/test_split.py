"""Split by time when timestamps are real, stratified when they are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.split import SplitError, split_labels

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def _labels(n: int, same_time: bool = False, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    as_of = [T0] * n if same_time else [T0 + pd.Timedelta(hours=int(h)) for h in rng.permutation(n)]
    return pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)], "as_of": as_of, "label": rng.integers(0, 2, n)})


def test_time_split_tests_on_newer_leads() -> None:
    labels = _labels(1000)
    split = split_labels(labels, test_fraction=0.2, calibration_fraction=0.15)
    assert split.kind == "time"
    train, cal, test = (labels.loc[split.mask(p), "as_of"] for p in ("train", "calibration", "test"))
    assert train.max() < cal.min() and cal.max() < test.min()
    assert test.min() == split.test_from
    assert abs(len(test) - 200) <= 1 and abs(len(cal) - 120) <= 1


def test_time_split_keeps_equal_times_on_one_side() -> None:
    labels = _labels(400)
    labels["as_of"] = labels["as_of"].dt.floor("D")  # many leads share a day
    split = split_labels(labels)
    test_days = set(labels.loc[split.mask("test"), "as_of"])
    other_days = set(labels.loc[~split.mask("test"), "as_of"])
    assert not test_days & other_days


def test_no_timestamps_means_stratified() -> None:
    labels = _labels(1000, same_time=True)
    split = split_labels(labels, test_fraction=0.25)
    assert split.kind == "stratified" and split.test_from is None
    rate = labels["label"].mean()
    for part in ("train", "calibration", "test"):
        assert abs(labels.loc[split.mask(part), "label"].mean() - rate) < 0.01
    assert split.counts["test"] == 250


def test_one_class_is_refused_with_a_reason() -> None:
    labels = _labels(200)
    labels["label"] = 0
    with pytest.raises(SplitError, match="both outcomes are needed"):
        split_labels(labels)

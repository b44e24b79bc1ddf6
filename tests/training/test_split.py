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


def _snapshots(n_leads: int, same_time: bool = False, seed: int = 1) -> pd.DataFrame:
    """Up to four snapshots per lead (entry, +7, +30, +90 days), as `training.labels` builds them."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_leads):
        entry = T0 if same_time else T0 + pd.Timedelta(hours=int(rng.integers(0, 24 * 365)))
        for day in (0, 7, 30, 90)[: int(rng.integers(1, 5))]:
            as_of = entry + pd.Timedelta(days=day)
            label = int(rng.random() < 0.3)
            rows.append({"lead_id": f"L{i}", "entry_as_of": entry, "as_of": as_of, "snapshot_day": day, "label": label})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("same_time", [False, True])
def test_a_leads_snapshots_are_never_split(same_time: bool) -> None:
    rows = _snapshots(600, same_time=same_time)
    split = split_labels(rows, test_fraction=0.2, calibration_fraction=0.15)
    assert split.kind == ("stratified" if same_time else "time")
    parts_per_lead = split.part.groupby(rows["lead_id"]).nunique()
    assert (parts_per_lead == 1).all()
    # The fractions are shares of leads, not of rows.
    test_leads = rows.loc[split.mask("test"), "lead_id"].nunique()
    assert abs(test_leads - 120) <= 1


def test_time_split_cuts_on_entry_not_on_later_snapshots() -> None:
    rows = _snapshots(600)
    split = split_labels(rows)
    entries = rows.groupby("lead_id")["entry_as_of"].first()
    test_leads = set(rows.loc[split.mask("test"), "lead_id"])
    assert entries[list(test_leads)].min() == split.test_from
    assert entries.drop(list(test_leads)).max() < split.test_from
    # A train lead's later snapshot may lie after the cut; it stays with its lead.
    late_train = rows.loc[~split.mask("test") & (rows["as_of"] >= split.test_from)]
    assert len(late_train) > 0 and not set(late_train["lead_id"]) & test_leads

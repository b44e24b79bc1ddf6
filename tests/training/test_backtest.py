"""Backtest folds keep a lead on one side and time in order; the bootstrap interval behaves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.backtest import BacktestError, auc_interval, inner_split, make_folds, paired_auc_difference, weighted_auc
from training.calibration import fit_calibration
from training.evaluate import expected_calibration_error


def snapshot_frame(n_leads: int, seed: int, timed: bool = True) -> pd.DataFrame:
    """1-4 rows per lead (snapshots 30 days apart), entries spread over two years."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2024-01-01T00:00:00Z")
    for i in range(n_leads):
        entry = start + pd.Timedelta(minutes=int(rng.integers(0, 2 * 365 * 24 * 60))) if timed else start
        label = int(rng.random() < 0.3)
        for k in range(int(rng.integers(1, 5))):
            as_of = entry + pd.Timedelta(days=30 * k) if timed else start
            rows.append({"lead_id": f"L-{i}", "as_of": as_of, "label": label, "x": rng.normal()})
    return pd.DataFrame(rows)


def test_time_folds_keep_leads_whole_and_cuts_in_order() -> None:
    frame = snapshot_frame(600, seed=1)
    assert frame["lead_id"].duplicated().any()  # snapshots: the property is not trivial
    entry = frame.groupby("lead_id")["as_of"].min()
    folds = make_folds(frame, "time")
    assert len(folds) == 4
    seen_test: set[str] = set()
    for prev, fold in zip([None, *folds[:-1]], folds, strict=True):
        train_leads = set(frame["lead_id"].iloc[fold.train])
        test_leads = set(frame["lead_id"].iloc[fold.test])
        assert not train_leads & test_leads
        assert not test_leads & seen_test  # test slices do not overlap
        seen_test |= test_leads
        # Every lead trained on entered before the cut; every tested lead at or after it.
        assert entry[list(train_leads)].max() < fold.test_from <= entry[list(test_leads)].min()
        if prev is not None:
            assert prev.test_from is not None and prev.test_to is not None and fold.test_from is not None
            assert prev.test_from < fold.test_from and prev.test_to < fold.test_from
            assert set(frame["lead_id"].iloc[prev.test]) <= train_leads  # rolling origin: the past is learned
    # Every row of a tested lead is in its slice, never split between slices.
    rows_tested = np.concatenate([f.test for f in folds])
    tested = frame.iloc[rows_tested]
    assert len(tested) == frame["lead_id"].isin(tested["lead_id"]).sum()


def test_stratified_folds_group_leads_and_cover_everyone() -> None:
    frame = snapshot_frame(400, seed=2, timed=False)
    folds = make_folds(frame, "stratified", seed=3)
    assert len(folds) == 5
    rows = np.concatenate([f.test for f in folds])
    assert sorted(rows) == list(range(len(frame)))  # each row tested exactly once
    for fold in folds:
        assert not set(frame["lead_id"].iloc[fold.train]) & set(frame["lead_id"].iloc[fold.test])


def test_inner_validation_is_the_newest_leads_of_the_fold() -> None:
    frame = snapshot_frame(600, seed=4)
    fold = make_folds(frame, "time")[1]
    split = inner_split(frame, fold.train, "time", seed=0)
    assert split is not None
    fit, val = split
    assert not set(frame["lead_id"].iloc[fit]) & set(frame["lead_id"].iloc[val])
    entry = frame.groupby("lead_id")["as_of"].min()
    assert entry[frame["lead_id"].iloc[fit].unique()].max() <= entry[frame["lead_id"].iloc[val].unique()].min()


def test_one_outcome_only_is_refused() -> None:
    frame = snapshot_frame(100, seed=5).assign(label=0)
    with pytest.raises(BacktestError, match="both outcomes"):
        make_folds(frame, "time")


def planted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return y, y * 0.8 + rng.normal(size=n)


def test_weighted_auc_matches_sklearn_with_ties() -> None:
    y, score = planted(500, seed=6)
    score = np.round(score, 1)  # many ties
    levels = np.unique(score, return_inverse=True)[1]
    assert weighted_auc(y.astype(float), levels, np.ones(len(y))) == pytest.approx(roc_auc_score(y, score))
    w = np.random.default_rng(0).integers(0, 3, len(y)).astype(float)
    assert weighted_auc(y.astype(float), levels, w) == pytest.approx(roc_auc_score(y, score, sample_weight=w))


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_data() -> None:
    widths = []
    for n in (400, 6400):
        y, score = planted(n, seed=7)
        lo, hi = auc_interval(y, score, n_boot=200, seed=0)
        assert lo < roc_auc_score(y, score) < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2.5  # ~1/sqrt(16) = 4x narrower in theory


def test_resampling_leads_widens_the_interval_of_duplicated_rows() -> None:
    y, score = planted(600, seed=8)
    y4, score4 = np.repeat(y, 4), np.repeat(score, 4)
    groups = np.repeat(np.arange(600), 4)
    lo_rows, hi_rows = auc_interval(y4, score4, None, seed=0)
    lo_leads, hi_leads = auc_interval(y4, score4, groups, seed=0)
    assert (hi_leads - lo_leads) > 1.5 * (hi_rows - lo_rows)  # 4 copies of a lead are not 4 leads


def test_paired_difference_of_the_same_rows() -> None:
    rng = np.random.default_rng(9)
    y, base = planted(3000, seed=9)
    better = base + 0.25 * y + 0.05 * rng.normal(size=len(y))
    lo, hi = paired_auc_difference(y, better, base, np.arange(len(y)), seed=0)
    assert 0 < lo <= roc_auc_score(y, better) - roc_auc_score(y, base) <= hi
    same_lo, same_hi = paired_auc_difference(y, base, base, np.arange(len(y)), seed=0)
    assert same_lo == same_hi == 0.0


def test_cross_fit_calibration_is_flat_when_margins_do_not_rank() -> None:
    margin = np.linspace(-2, 2, 200)
    inverted = fit_calibration(margin, (margin < 0).astype(int))
    assert inverted.a == 0.0 and "do not rank" in inverted.note
    good = fit_calibration(margin, (margin > 0.3).astype(int) | (np.arange(200) % 7 == 0))
    assert good.a > 0 and good.note == "platt"


def test_ece_by_hand() -> None:
    y = np.array([0, 0, 1, 1])
    assert expected_calibration_error(y, np.array([0.0, 0.0, 1.0, 1.0]), bins=2) == 0.0
    # Two bins: predictions 0.5 in each, observed 0 and 1 → off by 0.5 everywhere.
    assert expected_calibration_error(y, np.array([0.5, 0.5, 0.5, 0.5]), bins=2) == pytest.approx(0.5)

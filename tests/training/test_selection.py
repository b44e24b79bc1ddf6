"""Honest selection: ties go to the simpler model, the floor names what fails, and the backtest's
winner on planted signal also wins on leads that come later."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from samepage.definitions import Definitions
from tests.training.test_models import synthetic_features
from training import baselines as bl
from training.backtest import Backtest, CandidateRun, Fold, run_backtest
from training.models import refit_lightgbm, search_params
from training.registry import Promotion
from training.selection import MIN_LEADS, Evidence, choose, quality_floor
from training.trial import verdict


def fake_backtest(scores: dict[str, np.ndarray], y: np.ndarray) -> Backtest:
    runs = {}
    for name, score in scores.items():
        kind = name.split("_")[0]
        run = CandidateRun(name, kind, None, score, kind != "points")
        run.pooled = {"roc_auc": float(roc_auc_score(y, score))}
        runs[name] = run
    fold = Fold(1, np.array([], dtype=int), np.arange(len(y)))
    return Backtest("time", [fold], np.arange(len(y)), np.ones(len(y), dtype=int), y, np.arange(len(y)), runs, 200, 0)


def test_a_tie_goes_to_the_simpler_model() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.3).astype(int)
    points = y * 0.8 + rng.normal(size=len(y))
    jitter = {name: points + 0.02 * rng.normal(size=len(y)) for name in ("logreg", "lightgbm_1")}
    bt = fake_backtest({"points": points, **jitter}, y)
    choice = choose(bt)
    assert choice.winner == "points" and choice.best_lightgbm == "lightgbm_1"
    if bt.candidates["points"].roc_auc < max(r.roc_auc for r in bt.candidates.values()):
        assert "ties with" in choice.reason and "covers 0" in choice.reason


def test_a_clear_winner_is_chosen() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.3).astype(int)
    noise = rng.normal(size=len(y))
    bt = fake_backtest({"points": y * 0.3 + noise, "logreg": y * 0.6 + noise, "lightgbm_1": y * 1.5 + noise}, y)
    choice = choose(bt)
    assert choice.winner == "lightgbm_1" and choice.kind == "lightgbm"
    assert "beyond chance above" in choice.reason


def evidence(**changes: object) -> Evidence:
    base = {"kind": "lightgbm", "roc_auc": 0.8, "roc_auc_lo": 0.76, "points_roc_auc": 0.7, "logreg_roc_auc": 0.75,
            "n_leads": 5000, "n_positive": 900, "basis": "pooled backtest"}  # fmt: skip
    return Evidence(**{**base, **changes})  # type: ignore[arg-type]


def test_the_floor_names_each_failure() -> None:
    assert quality_floor(evidence()).passed
    assert "too few outcomes" in quality_floor(evidence(n_leads=MIN_LEADS - 1)).reasons[0]
    assert "coin flip" in quality_floor(evidence(roc_auc=0.52, roc_auc_lo=0.49)).reasons[0]
    assert "logistic regression" in quality_floor(evidence(logreg_roc_auc=0.81)).reasons[0]
    assert "points rules" in quality_floor(evidence(points_roc_auc=0.8)).reasons[0]
    # Logistic regression need not beat itself; points need not beat points.
    assert quality_floor(evidence(kind="logreg", logreg_roc_auc=0.8)).passed
    assert quality_floor(evidence(kind="points", points_roc_auc=0.8, logreg_roc_auc=0.9)).passed


def test_no_champion_is_made_from_a_model_below_the_floor() -> None:
    first = Promotion(True, "no champion yet: the first model becomes champion")
    promote, reason = verdict(evidence(roc_auc=0.51, roc_auc_lo=0.47), first)
    assert promote is False and "coin flip" in reason and "no champion yet" in reason
    promote, reason = verdict(evidence(), first)
    assert promote is True and "clears the quality floor" in reason
    promote, reason = verdict(evidence(), first, winner="logistic regression wins the backtest")
    assert promote is False and reason.startswith("not promoted: logistic regression wins")


def planted_frame(defs: Definitions, n: int, seed: int) -> pd.DataFrame:
    """An interaction no linear score can draw: page views matter only in two industries."""
    frame, _ = synthetic_features(defs, n, seed)
    rng = np.random.default_rng(seed + 100)
    hot = frame["industry"].isin(["industry-1", "industry-2"]).to_numpy()
    views = frame["page_views_90d"].to_numpy()
    logit = -2.0 + 3.0 * (hot & (views >= 2)) - 1.0 * (~hot & (views >= 2)) + 0.3 * frame["demo_requests_90d"].to_numpy()
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame["lead_id"] = [f"L-{i}" for i in range(n)]
    frame["as_of"] = pd.Timestamp("2025-01-01T00:00:00Z") + pd.to_timedelta(np.sort(rng.uniform(0, 365, n)), unit="D")
    return frame


@pytest.mark.slow
def test_backtest_winner_also_wins_on_a_later_hold_out(definitions: Definitions) -> None:
    frame = planted_frame(definitions, 5000, seed=11)
    past, later = frame.iloc[:3750], frame.iloc[3750:]  # rows are in time order
    grid = search_params({"num_boost_round": 300})
    bt = run_backtest(definitions, past.reset_index(drop=True), "time", grid, n_boot=100)
    choice = choose(bt)
    assert choice.kind == "lightgbm"
    X, y = past[definitions.feature_keys], past["label"].to_numpy()
    run = bt.candidates[choice.winner]
    assert run.params is not None
    model = refit_lightgbm(definitions, X, y, run.params, int(np.median(run.trees)), (1.0, 0.0))
    X_later, y_later = later[definitions.feature_keys], later["label"].to_numpy()
    later_auc = {
        "lightgbm": roc_auc_score(y_later, model.predict_proba(X_later)),
        "logreg": roc_auc_score(y_later, bl.logreg_proba(definitions, bl.fit_logreg(definitions, X, y), X_later)),
        "points": roc_auc_score(y_later, bl.points_score(definitions, X_later)),
    }
    assert max(later_auc, key=later_auc.__getitem__) == choice.kind


def aging_frame(defs: Definitions, n_leads: int, seed: int) -> pd.DataFrame:
    """Snapshots at entry, +7, +30, +90 days; a lead's outcome is random, but across snapshots its
    age predicts the label (a lead not converted by day 90 rarely converts later)."""
    rng = np.random.default_rng(seed)
    entry = pd.Timestamp("2025-01-01T00:00:00Z") + pd.to_timedelta(np.sort(rng.uniform(0, 365, n_leads)), unit="D")
    converts = rng.random(n_leads) < 0.3
    conv_day = np.where(converts, rng.uniform(1, 60, n_leads), np.inf)
    rows = []
    for i in range(n_leads):
        for day in (0, 7, 30, 90):
            if conv_day[i] <= day:
                break  # already converted: no later snapshot
            rows.append({"lead_id": f"L-{i}", "as_of": entry[i] + pd.Timedelta(days=day), "snapshot_day": day,
                         "label": int(converts[i])})  # fmt: skip
    labels = pd.DataFrame(rows)
    frame, _ = synthetic_features(defs, len(labels), seed)
    frame["days_since_created"] = labels["snapshot_day"].astype(float).to_numpy()
    return pd.concat([labels, frame], axis=1)


@pytest.mark.slow
def test_backtest_figures_judge_leads_not_snapshots(definitions: Definitions) -> None:
    frame = aging_frame(definitions, 2000, seed=5)
    bt = run_backtest(definitions, frame, "time", search_params({"num_boost_round": 60})[:1], n_boot=100)
    run = bt.candidates["lightgbm_1"]
    # Across snapshots age alone separates the labels; on one entry row per lead nothing does.
    assert run.roc_auc_all_snapshots > 0.6
    assert abs(run.roc_auc - 0.5) < 0.06 and run.roc_auc_ci[0] < 0.5
    assert bt.judged.sum() == frame.iloc[bt.pooled]["lead_id"].nunique() < len(bt.pooled)
    entry = frame.iloc[bt.pooled]["snapshot_day"].to_numpy() == 0
    assert run.roc_auc == pytest.approx(roc_auc_score(bt.y[entry], run.score[entry]))
    summary = bt.summary("lightgbm_1")
    assert summary["roc_auc_all_snapshots"] == run.roc_auc_all_snapshots
    assert sum(f["test_leads"] for f in summary["folds"]) == summary["n_test_leads"]


@pytest.mark.parametrize("kind", ["time", "stratified"])
def test_test_leads_are_the_newest_slice_on_time_and_everyone_without(definitions: Definitions, kind: str) -> None:
    frame = aging_frame(definitions, 600, seed=6)
    bt = run_backtest(definitions, frame, kind, search_params({"num_boost_round": 20})[:1], n_boot=20)
    tested = frame.iloc[bt.holdout]
    assert (tested["snapshot_day"] == 0).all() and not tested["lead_id"].duplicated().any()
    assert len(bt.on_holdout("logreg")) == len(tested)
    newest = set(frame["lead_id"].iloc[bt.last.test])
    expected = newest if kind == "time" else set(frame["lead_id"])
    assert set(tested["lead_id"]) == expected

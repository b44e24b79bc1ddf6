"""One honest trial of the candidates: backtest, choice, drift, the registered refit, the promotion verdict.

The registered model is the best LightGBM setting refit on every labelled row (the newest window
included) with the median tree count early stopping found inside the folds, and a Platt
calibration cross-fitted on the folds' out-of-fold margins. The `test_*` figures are the last
backtest fold: the newest slice, scored by models fit before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from samepage.bundle import ModelBundle
from training import selection
from training.backtest import Backtest, describe, run_backtest
from training.calibration import Calibration, fit_calibration
from training.data import TrainingData
from training.drift import drift_report, feature_ranges
from training.models import LightGBMParams, refit_lightgbm
from training.registry import Promotion

HOLDOUT_NOTE = "test_* = the last backtest fold: the newest slice, scored by models fit on the rows before it"


@dataclass
class Trial:
    backtest: Backtest
    choice: selection.Choice
    drift: dict[str, Any]
    calibration: Calibration

    @property
    def holdout(self) -> np.ndarray:
        """Frame positions of the newest slice (the last fold's test rows)."""
        return self.backtest.last.test

    @property
    def registered(self) -> str:
        return self.choice.best_lightgbm

    def holdout_scores(self) -> dict[str, np.ndarray]:
        """The last fold's out-of-fold scores, named as the evaluation charts name them."""
        bt = self.backtest
        return {
            "LightGBM (calibrated)": bt.on_last_fold(self.registered),
            "Points rules": bt.on_last_fold("points"),
            "Logistic regression": bt.on_last_fold("logreg"),
        }


def lead_counts(frame: pd.DataFrame) -> tuple[int, int]:
    """(leads, leads with a positive row): snapshots of one lead count once."""
    key = frame["lead_id"].astype(str) if "lead_id" in frame.columns else pd.Series(np.arange(len(frame)))
    per_lead = pd.Series(frame["label"].to_numpy(dtype=int)).groupby(key.to_numpy()).max()
    return int(len(per_lead)), int(per_lead.sum())


def run_trial(data: TrainingData, lightgbm: list[LightGBMParams], n_folds: int | None = None, n_boot: int = 200) -> Trial:
    """Backtest every candidate on the same folds, choose, calibrate by cross-fitting, measure drift."""
    bt = run_backtest(data.defs, data.frame, data.split.kind, lightgbm, n_folds, data.seed, n_boot)
    choice = selection.choose(bt)
    run = bt.candidates[choice.best_lightgbm]
    assert run.margin is not None
    calibration = fit_calibration(run.margin, bt.y)
    history = data.frame.drop(index=data.frame.index[bt.last.test])
    recent = data.frame.iloc[bt.last.test]
    basis = (
        f"the newest slice (leads from {bt.last.test_from:%Y-%m-%d}) against the {len(history):,} rows before it"
        if bt.kind == "time" and bt.last.test_from is not None
        else "no timestamps: one random fold against the rest (drift over time cannot be seen)"
    )
    return Trial(bt, choice, drift_report(data.defs, history, recent, basis), calibration)


def fit_final(data: TrainingData, trial: Trial, meta: dict[str, Any]) -> ModelBundle:
    """The chosen LightGBM setting on every labelled row; meta carries drift and feature ranges."""
    run = trial.backtest.candidates[trial.registered]
    assert run.params is not None
    trees = int(np.median(run.trees)) if run.trees else run.params.num_boost_round
    X, y = data.frame[data.defs.feature_keys], data.frame["label"].to_numpy(dtype=int)
    extra = {
        "drift": trial.drift,
        "feature_ranges": feature_ranges(data.defs, X),
        "backtest": {"roc_auc": run.roc_auc, "roc_auc_ci": list(run.roc_auc_ci), "folds": len(trial.backtest.folds)},
        "selection": trial.choice.reason,
        "test_rows": HOLDOUT_NOTE,
    }
    cal = trial.calibration
    return refit_lightgbm(data.defs, X, y, run.params, trees, (cal.a, cal.b), {**meta, **extra})


def verdict(
    ev: selection.Evidence, champion: Promotion, winner: str | None = None, enforce_floor: bool = True
) -> tuple[bool, str]:
    """Promote only when the floor holds, the winner can be served, and the champion gate agrees.

    `enforce_floor=False` (asked for explicitly, e.g. a fixture that needs any champion) leaves
    only the champion gate, and the reason still says what the floor found.
    """
    floor = selection.quality_floor(ev)
    problems = list(floor.reasons)
    if winner is not None:
        problems.insert(0, winner)
    if problems and not enforce_floor:
        return champion.promote, f"{champion.reason}; the quality floor was switched off (it says: {'; '.join(problems)})"
    if not problems:
        passed = (
            f"clears the quality floor ({ev.basis} ROC AUC {ev.roc_auc:.3f}, lower bound {ev.roc_auc_lo:.3f} > 0.5, "
            f"above logistic regression {ev.logreg_roc_auc:.3f} and the points rules {ev.points_roc_auc:.3f}; "
            f"{ev.n_leads:,} leads, {ev.n_positive:,} positive)"
        )
        return champion.promote, f"{champion.reason}; {passed}"
    said = "; ".join(problems)
    if champion.champion_version is None and "no champion" in champion.reason:
        return False, f"not promoted: {said}. There is no champion yet, and none is made from a model below the floor"
    return False, f"not promoted: {said}; {champion.reason}"


def winner_problem(trial: Trial) -> str | None:
    """Why the registered LightGBM may not serve even if it clears the floor: another kind won."""
    choice = trial.choice
    if choice.kind in selection.SERVABLE_KINDS:
        return None
    return (
        f"{describe(trial.backtest.candidates[choice.winner]).lower()} wins the backtest ({choice.reason}); "
        f"this version cannot serve a {choice.kind} model yet, so the LightGBM is registered for the record but not promoted"
    )

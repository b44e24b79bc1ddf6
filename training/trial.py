"""One honest trial of the candidates: backtest, choice, drift, the registered refit, the promotion verdict.

The registered model is whatever wins the backtest, refit on every labelled row (the newest
window included) with the settings the backtest used: LightGBM with the median tree count early
stopping found inside the folds and a Platt calibration cross-fitted on the folds' out-of-fold
margins; logistic regression (`fit_logreg_bundle`, same C and pooling); or the team's points
rules with their scale fitted to the outcomes (`PointsBundle.fit`). The `test_*` figures are the
last backtest fold's leads (their entry rows: one per lead, see `training.backtest`), scored by
models fit before them; without timestamps no fold is the newest, so they are every lead's
out-of-fold score (the pooled figure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from samepage.bundle import Bundle
from training import baselines as bl
from training import selection
from training.backtest import KIND_NAMES, Backtest, describe, run_backtest
from training.calibration import Calibration, fit_calibration
from training.data import TrainingData
from training.drift import drift_report, feature_ranges
from training.models import LightGBMParams, refit_lightgbm
from training.registry import Promotion

HOLDOUT_NOTE = (
    "test_* = the last backtest fold: the newest slice's leads (entry rows, one per lead), scored by models "
    "fit on the rows before it; without timestamps, every lead's out-of-fold score over all folds"
)
# How the evaluation charts name each kind's scores (a winner doubles as its own baseline).
SCORE_NAMES = {"lightgbm": "LightGBM (calibrated)", "logreg": KIND_NAMES["logreg"], "points": KIND_NAMES["points"]}


@dataclass
class Trial:
    backtest: Backtest
    choice: selection.Choice
    drift: dict[str, Any]
    calibration: Calibration
    kind: str | None = None  # registered kind asked for by the caller (None: the winner's)

    @property
    def holdout(self) -> np.ndarray:
        """Frame positions of the test leads' entry rows: the newest slice (time), every fold (stratified)."""
        return self.backtest.holdout

    @property
    def registered(self) -> str:
        """The candidate `fit_final` refits and `register` registers: the backtest winner, or the
        best candidate of the kind the caller asked for."""
        if self.kind is None or self.kind == self.choice.kind:
            return self.choice.winner
        if self.kind == "lightgbm":
            return self.choice.best_lightgbm
        return self.kind

    @property
    def registered_kind(self) -> str:
        return self.backtest.candidates[self.registered].kind

    @property
    def score_name(self) -> str:
        """The registered model's name among `holdout_scores`."""
        return SCORE_NAMES[self.registered_kind]

    def holdout_scores(self) -> dict[str, np.ndarray]:
        """Out-of-fold scores on `holdout`, named as the evaluation charts name them."""
        bt = self.backtest
        return {
            self.score_name: bt.on_holdout(self.registered),
            "Points rules": bt.on_holdout("points"),
            "Logistic regression": bt.on_holdout("logreg"),
        }


def lead_counts(frame: pd.DataFrame) -> tuple[int, int]:
    """(leads, leads with a positive row): snapshots of one lead count once."""
    key = frame["lead_id"].astype(str) if "lead_id" in frame.columns else pd.Series(np.arange(len(frame)))
    per_lead = pd.Series(frame["label"].to_numpy(dtype=int)).groupby(key.to_numpy()).max()
    return int(len(per_lead)), int(per_lead.sum())


def run_trial(
    data: TrainingData, lightgbm: list[LightGBMParams], n_folds: int | None = None, n_boot: int = 200, kind: str | None = None
) -> Trial:
    """Backtest every candidate on the same folds, choose, calibrate by cross-fitting, measure drift.

    `kind` (lightgbm, logreg, points) registers the best candidate of that kind whatever wins: for
    fixtures that need one kind to serve. Promotion then still needs the floor switched off.
    """
    if kind is not None and kind not in selection.SIMPLICITY:
        raise ValueError(f"kind must be one of {sorted(selection.SIMPLICITY)}, not {kind!r}")
    bt = run_backtest(data.defs, data.frame, data.split.kind, lightgbm, n_folds, data.seed, n_boot)
    choice = selection.choose(bt)
    run = bt.candidates[choice.best_lightgbm]
    assert run.margin is not None
    calibration = fit_calibration(run.margin, bt.y)
    # Leads at entry on both sides: the newest leads have had fewer later looks (their windows are
    # still open), so comparing all snapshots would report the snapshot design as drift in age.
    entry = data.frame["snapshot_day"].to_numpy() == 0 if "snapshot_day" in data.frame else np.ones(len(data.frame), bool)
    newest = np.zeros(len(data.frame), bool)
    newest[bt.last.test] = True
    history, recent = data.frame[entry & ~newest], data.frame[entry & newest]
    basis = (
        f"the newest slice's {len(recent):,} leads (from {bt.last.test_from:%Y-%m-%d}) at entry "
        f"against the {len(history):,} leads before them"
        if bt.kind == "time" and bt.last.test_from is not None
        else "no timestamps: one random fold against the rest (drift over time cannot be seen)"
    )
    return Trial(bt, choice, drift_report(data.defs, history, recent, basis), calibration, kind)


def fit_final(data: TrainingData, trial: Trial, meta: dict[str, Any]) -> Bundle:
    """The backtest winner on every labelled row (all snapshots); meta carries drift and feature ranges."""
    run = trial.backtest.candidates[trial.registered]
    X, y = data.frame[data.defs.feature_keys], data.frame["label"].to_numpy(dtype=int)
    extra = {
        "drift": trial.drift,
        "feature_ranges": feature_ranges(data.defs, X),
        "backtest": {"roc_auc": run.roc_auc, "roc_auc_ci": list(run.roc_auc_ci), "folds": len(trial.backtest.folds)},
        "selection": trial.choice.reason,
        "test_rows": HOLDOUT_NOTE,
    }
    if run.kind != "lightgbm":
        bundle: Bundle = bl.fit_logreg(data.defs, X, y) if run.kind == "logreg" else bl.fit_points(data.defs, X, y)
        bundle.meta = {**bundle.meta, **meta, **extra, "kind": run.kind}
        return bundle
    assert run.params is not None
    trees = int(np.median(run.trees)) if run.trees else run.params.num_boost_round
    cal = trial.calibration
    return refit_lightgbm(data.defs, X, y, run.params, trees, (cal.a, cal.b), {**meta, **extra})


def verdict(
    ev: selection.Evidence, champion: Promotion, winner: str | None = None, enforce_floor: bool = True, won: str = ""
) -> tuple[bool, str]:
    """Promote only when the floor holds, the winner can be served, and the champion gate agrees.

    `enforce_floor=False` (asked for explicitly, e.g. a fixture that needs any champion) leaves
    only the champion gate, and the reason still says what the floor found. `won`: which kind won
    the backtest and why, added to the reason.
    """
    promote, reason = _verdict(ev, champion, winner, enforce_floor)
    return promote, f"{reason}. {won}" if won else reason


def won_the_backtest(trial: Trial) -> str:
    """'Logistic regression won the backtest: <selection reason>' (part of `promotion_reason`)."""
    return f"{describe(trial.backtest.candidates[trial.choice.winner])} won the backtest: {trial.choice.reason}"


def _verdict(ev: selection.Evidence, champion: Promotion, winner: str | None, enforce_floor: bool) -> tuple[bool, str]:
    floor = selection.quality_floor(ev)
    problems = list(floor.reasons)
    if winner is not None:
        problems.insert(0, winner)
    if problems and not enforce_floor:
        return champion.promote, f"{champion.reason}; the quality floor was switched off (it says: {'; '.join(problems)})"
    if not problems:
        beaten = {"logreg": f"logistic regression {ev.logreg_roc_auc:.3f}", "points": f"the points rules {ev.points_roc_auc:.3f}"}
        above = " and ".join(v for k, v in beaten.items() if k != ev.kind and not (ev.kind == "points" and k == "logreg"))
        passed = (
            f"clears the quality floor ({ev.basis} ROC AUC {ev.roc_auc:.3f}, lower bound {ev.roc_auc_lo:.3f} > 0.5"
            + (f", above {above}" if above else ", the team's own rules")
            + f"; {ev.n_leads:,} leads, {ev.n_positive:,} positive)"
        )
        return champion.promote, f"{champion.reason}; {passed}"
    said = "; ".join(problems)
    if champion.champion_version is None and "no champion" in champion.reason:
        return False, f"not promoted: {said}. There is no champion yet, and none is made from a model below the floor"
    return False, f"not promoted: {said}; {champion.reason}"


def winner_problem(trial: Trial) -> str | None:
    """Why the registered model may not serve even if it clears the floor: it is not what won."""
    choice = trial.choice
    if trial.registered == choice.winner and choice.kind in selection.SERVABLE_KINDS:
        return None
    registered = describe(trial.backtest.candidates[trial.registered])
    return (
        f"{describe(trial.backtest.candidates[choice.winner]).lower()} wins the backtest ({choice.reason}); "
        f"{registered} was registered because the caller asked for kind {trial.kind!r}, so it is not promoted on its own merit"
    )

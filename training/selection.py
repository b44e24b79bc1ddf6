"""Honest model selection on the backtest, and the quality floor a model must clear to serve.

Selection: the best LightGBM setting by pooled backtest ROC AUC stands for LightGBM; then the
simplest of points rules < logistic regression < LightGBM whose AUC the best one does not beat
beyond chance wins. "Beyond chance" is the paired bootstrap: the 95% interval of AUC(best) -
AUC(simpler), both scored on the same resampled leads, must lie above 0. (Two scores of the same
rows are strongly correlated, so comparing one figure with the other's own interval would call
almost every difference a tie; the paired interval is the interval of the difference itself.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from training.backtest import Backtest, CandidateRun, describe

SIMPLICITY = {"points": 0, "logreg": 1, "lightgbm": 2}
# Below these the backtest cannot tell a model from a guess. With 50 positives among 500 leads, the
# standard error of an AUC near 0.7 is ~0.04 (Hanley & McNeil), so the 95% lower bound clears 0.5
# only for a real signal, and each of 4-5 folds still tests >= 10 positives; fewer positives
# leave single folds with a handful, where one lead swings the AUC by several points.
MIN_LEADS = 500
MIN_POSITIVES = 50
# Kinds the registry can serve: every kind is a `samepage.bundle.Bundle` that explains itself exactly.
SERVABLE_KINDS = frozenset({"points", "logreg", "lightgbm"})


@dataclass
class Choice:
    winner: str  # a candidate name in the backtest
    kind: str
    best_lightgbm: str  # what gets registered (the refit of this setting)
    reason: str


@dataclass
class Evidence:
    """What the floor looks at: the candidate's AUC with its interval and the baselines' on the same rows."""

    kind: str
    roc_auc: float
    roc_auc_lo: float
    points_roc_auc: float
    logreg_roc_auc: float
    n_leads: int
    n_positive: int
    basis: str  # "pooled backtest" / "test rows"


@dataclass
class Floor:
    passed: bool
    reasons: list[str] = field(default_factory=list)


def best_lightgbm(bt: Backtest) -> CandidateRun:
    runs = [r for r in bt.candidates.values() if r.kind == "lightgbm"]
    return max(runs, key=lambda r: r.roc_auc)  # first (simplest) setting on an exact tie


def choose(bt: Backtest) -> Choice:
    """Pick by pooled backtest ROC AUC; a tie (paired interval covers 0) goes to the simpler model."""
    lgbm = best_lightgbm(bt)
    contenders = [bt.candidates["points"], bt.candidates["logreg"], lgbm]
    best = max(contenders, key=lambda r: (r.roc_auc, -SIMPLICITY[r.kind]))
    for run in sorted(contenders, key=lambda r: SIMPLICITY[r.kind]):
        if run is best:
            beaten = [r for r in contenders if SIMPLICITY[r.kind] < SIMPLICITY[best.kind]]
            margins = ", ".join(f"{describe(r)} {r.roc_auc:.3f}" for r in beaten)
            why = f"{describe(best)} has the best pooled backtest ROC AUC, {best.roc_auc:.3f}"
            why += f", beyond chance above {margins}" if beaten else ""
            return Choice(best.name, best.kind, lgbm.name, why)
        lo, hi = bt.difference_interval(best.name, run.name)
        if lo <= 0:
            why = (
                f"{describe(run)} ({run.roc_auc:.3f}) ties with {describe(best)} ({best.roc_auc:.3f}): the 95% interval "
                f"of the difference, [{lo:+.3f}, {hi:+.3f}], covers 0, so the simpler model wins"
            )
            return Choice(run.name, run.kind, lgbm.name, why)
    raise AssertionError("the best contender is always among the contenders")


def evidence(bt: Backtest, name: str, n_leads: int, n_positive: int) -> Evidence:
    run = bt.candidates[name]
    return Evidence(
        run.kind, run.roc_auc, run.roc_auc_ci[0], bt.candidates["points"].roc_auc, bt.candidates["logreg"].roc_auc,
        n_leads, n_positive, "pooled backtest",
    )  # fmt: skip


def quality_floor(ev: Evidence) -> Floor:
    """Enough outcomes, a lower AUC bound above a coin flip, and better than both baselines."""
    reasons = []
    if ev.n_leads < MIN_LEADS or ev.n_positive < MIN_POSITIVES:
        reasons.append(
            f"too few outcomes to learn from: {ev.n_leads:,} leads with a closed label window and {ev.n_positive:,} "
            f"positive (at least {MIN_LEADS:,} and {MIN_POSITIVES:,} are needed)"
        )
    if not ev.roc_auc_lo > 0.5:
        reasons.append(
            f"no better than a coin flip: {ev.basis} ROC AUC {ev.roc_auc:.3f}, "
            f"95% lower bound {ev.roc_auc_lo:.3f} is not above 0.5"
        )
    if ev.kind != "points" and not ev.roc_auc > ev.points_roc_auc:
        reasons.append(f"does not beat the points rules: {ev.basis} ROC AUC {ev.roc_auc:.3f} vs {ev.points_roc_auc:.3f}")
    if ev.kind not in ("points", "logreg") and not ev.roc_auc > ev.logreg_roc_auc:
        reasons.append(f"does not beat logistic regression: {ev.basis} ROC AUC {ev.roc_auc:.3f} vs {ev.logreg_roc_auc:.3f}")
    return Floor(not reasons, reasons)

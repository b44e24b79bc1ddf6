"""The backtest: every candidate scored on rows it did not learn from, fold by fold, on the same rows.

With real timestamps it is rolling-origin: leads ordered by their entry (first as-of time), the
oldest `MIN_TRAIN_SHARE` always in training, the rest cut into `n_folds` slices; fold k trains on
everything before its cut and is tested on the next slice. Without timestamps it is stratified
k-fold. Either way a lead's rows (its snapshots) stay on one side of every cut: folds are made of
leads, not rows. Metrics per fold and pooled (all test slices together), with a cluster-bootstrap
95% interval on the pooled ROC AUC (leads resampled, so snapshots of one lead count once).

The headline figures judge leads, not snapshots: models learn from every snapshot, but metrics,
intervals and the paired differences selection uses are computed on each test lead's entry row
(`snapshot_day == 0`, one per lead). Across snapshots age alone predicts the label (a lead not
converted by day 90 rarely converts later), so an all-snapshot AUC rewards a model that knows
only age; with outcomes shuffled between leads it reaches a lower bound of ~0.66. The
all-snapshot ROC AUC is kept beside it (`roc_auc_all_snapshots`) for comparison.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.model_selection import StratifiedKFold, train_test_split

from samepage.bundle import FeatureEncoder
from samepage.definitions import Definitions
from samepage.values import sigmoid
from training import baselines as bl
from training import evaluate as ev_mod
from training.calibration import fit_calibration
from training.models import LightGBMParams, categorical_keys, train_booster

TIME_FOLDS, STRATIFIED_FOLDS = 4, 5
MIN_TRAIN_SHARE = 0.4  # the first fold learns from the oldest 40% of leads
VALID_SHARE = 0.15  # inside a fold: the newest (or a random) 15% of its leads decide early stopping
N_BOOT = 200
KIND_NAMES = {"points": "Points rules", "logreg": "Logistic regression", "lightgbm": "LightGBM"}


class BacktestError(ValueError):
    """Too few leads or outcomes to make a single fold with both outcomes on each side."""


@dataclass
class Fold:
    number: int
    train: np.ndarray  # row positions in the frame
    test: np.ndarray
    test_from: pd.Timestamp | None = None
    test_to: pd.Timestamp | None = None


@dataclass
class CandidateRun:
    """One candidate's out-of-fold scores (aligned with `Backtest.pooled`) and its metrics."""

    name: str
    kind: str  # points | logreg | lightgbm
    params: LightGBMParams | None
    score: np.ndarray
    is_probability: bool
    margin: np.ndarray | None = None
    trees: list[int] = field(default_factory=list)
    folds: list[dict[str, float]] = field(default_factory=list)
    pooled: dict[str, float] = field(default_factory=dict)  # on entry rows (one per lead)
    roc_auc_ci: tuple[float, float] = (float("nan"), float("nan"))
    roc_auc_all_snapshots: float = float("nan")  # every snapshot row: age alone scores here

    @property
    def roc_auc(self) -> float:
        return self.pooled["roc_auc"]


@dataclass
class Backtest:
    kind: str
    folds: list[Fold]
    pooled: np.ndarray  # frame positions of every test row, fold after fold
    fold_of: np.ndarray  # fold number of each pooled row
    y: np.ndarray
    groups: np.ndarray  # lead code of each pooled row (the bootstrap resamples leads)
    candidates: dict[str, CandidateRun]
    n_boot: int = N_BOOT
    seed: int = 0
    entry: np.ndarray | None = None  # per pooled row: is it its lead's entry snapshot (what metrics judge)

    def __post_init__(self) -> None:
        if self.entry is None:
            self.entry = np.ones(len(self.pooled), dtype=bool)

    @property
    def judged(self) -> np.ndarray:
        """Mask of the pooled rows the headline figures are computed on (entry rows)."""
        assert self.entry is not None
        return self.entry

    @property
    def last(self) -> Fold:
        return self.folds[-1]

    @property
    def _holdout_mask(self) -> np.ndarray:
        # On time, the last fold is the newest slice: the leads most like tomorrow's. Without
        # timestamps no fold is newer than another, so every lead's out-of-fold score is the test.
        in_holdout = self.fold_of == self.last.number if self.kind == "time" else np.ones(len(self.pooled), dtype=bool)
        return in_holdout & self.judged

    @property
    def holdout(self) -> np.ndarray:
        """Frame positions of the test leads' entry rows: the last fold on time, every fold otherwise."""
        return self.pooled[self._holdout_mask]

    def on_holdout(self, name: str) -> np.ndarray:
        """Out-of-fold scores of `holdout`, in the same order."""
        return self.candidates[name].score[self._holdout_mask]

    def difference_interval(self, better: str, other: str) -> tuple[float, float]:
        """95% interval of AUC(better) - AUC(other) over the same lead resamples (paired), on entry rows."""
        keep = self.judged
        a, b = self.candidates[better].score[keep], self.candidates[other].score[keep]
        return paired_auc_difference(self.y[keep], a, b, self.groups[keep], self.n_boot, self.seed)

    def fold_table(self) -> pd.DataFrame:
        rows = []
        for run in self.candidates.values():
            for fold, metrics in zip(self.folds, run.folds, strict=True):
                rows.append({"candidate": run.name, "fold": fold.number, **_fold_facts(fold, self), **metrics})
            rows.append({"candidate": run.name, "fold": "pooled", "n_test": len(self.y), "n_test_leads": int(self.judged.sum()),
                         **run.pooled, "roc_auc_ci_lo": run.roc_auc_ci[0], "roc_auc_ci_hi": run.roc_auc_ci[1],
                         "roc_auc_all_snapshots": run.roc_auc_all_snapshots})  # fmt: skip
        return pd.DataFrame(rows)

    def summary(self, name: str) -> dict[str, Any]:
        """The contract's `backtest` object for candidate `name`, plus every candidate's pooled AUC."""
        run = self.candidates[name]
        folds = [{"fold": f.number, **_fold_facts(f, self), **m} for f, m in zip(self.folds, run.folds, strict=True)]
        return {
            "kind": "rolling origin on time" if self.kind == "time" else f"stratified {len(self.folds)}-fold",
            "model": name,
            "folds": folds,
            "judged_on": "entry rows: one per test lead (models learn from every snapshot)",
            **run.pooled,
            "roc_auc_ci": list(run.roc_auc_ci),
            "roc_auc_all_snapshots": run.roc_auc_all_snapshots,
            "n_test_leads": int(self.judged.sum()),
            "n_test_rows": int(len(self.y)),
            "candidates": {
                c.name: {
                    "label": describe(c), "kind": c.kind, "roc_auc": c.roc_auc, "roc_auc_ci": list(c.roc_auc_ci),
                    "roc_auc_all_snapshots": c.roc_auc_all_snapshots,
                }  # fmt: skip
                for c in self.candidates.values()
            },
        }


def _fold_facts(fold: Fold, bt: Backtest) -> dict[str, Any]:
    """n_train / n_test are rows (snapshots); test_leads / test_positives count the judged entry rows."""
    judged = (bt.fold_of == fold.number) & bt.judged
    return {
        "test_from": fold.test_from.isoformat() if fold.test_from is not None else None,
        "test_to": fold.test_to.isoformat() if fold.test_to is not None else None,
        "n_train": int(len(fold.train)),
        "n_test": int(len(fold.test)),
        "test_leads": int(judged.sum()),
        "test_positives": int(bt.y[judged].sum()),
    }


# -- folds ----------------------------------------------------------------------------------
def entry_rows(frame: pd.DataFrame) -> np.ndarray:
    """Mask of each lead's entry snapshot (`snapshot_day == 0`); every row when there are no snapshots."""
    if "snapshot_day" not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    return (pd.to_numeric(frame["snapshot_day"], errors="coerce") == 0).to_numpy()


def lead_codes(frame: pd.DataFrame) -> np.ndarray:
    """One integer per lead (rows of one lead share it); one per row when there is no lead_id."""
    if "lead_id" not in frame.columns:
        return np.arange(len(frame))
    return pd.factorize(frame["lead_id"].astype(str))[0]


def make_folds(frame: pd.DataFrame, kind: str, n_folds: int | None = None, seed: int = 42) -> list[Fold]:
    """Folds of leads: rolling origin on time (`kind="time"`) or stratified k-fold."""
    groups = lead_codes(frame)
    y = frame["label"].to_numpy(dtype=int)
    lead_label = np.zeros(groups.max() + 1, dtype=int)
    np.maximum.at(lead_label, groups, y)
    if kind == "time":
        entry = pd.Series(frame["as_of"].to_numpy()).groupby(groups).min()
        folds = _rolling_origin(groups, entry, n_folds or TIME_FOLDS)
    else:
        folds = _stratified(groups, lead_label, n_folds or STRATIFIED_FOLDS, seed)
    entry = entry_rows(frame)
    usable = [f for f in folds if _both_classes(y[f.train]) and _both_classes(y[f.test[entry[f.test]]])]
    if not usable:
        raise BacktestError(
            f"{len(np.unique(groups)):,} leads, {int(lead_label.sum()):,} positive: "
            f"no {kind} fold has both outcomes on both sides"
        )
    return [Fold(i, f.train, f.test, f.test_from, f.test_to) for i, f in enumerate(usable, start=1)]


def _rolling_origin(groups: np.ndarray, entry: pd.Series, n_folds: int) -> list[Fold]:
    times = entry.sort_values(kind="stable")
    n = len(times)
    starts = [int(np.floor(n * (MIN_TRAIN_SHARE + (1 - MIN_TRAIN_SHARE) * k / n_folds))) for k in range(n_folds)]
    cuts = [times.iloc[min(s, n - 1)] for s in starts] + [None]
    row_entry = entry.to_numpy()[groups]
    folds = []
    for k in range(n_folds):
        lo, hi = cuts[k], cuts[k + 1]
        test = (row_entry >= lo) & (row_entry < hi) if hi is not None else row_entry >= lo
        train = row_entry < lo  # everything before the cut: a lead's snapshots share its entry
        last = pd.Timestamp(row_entry[test].max()) if test.any() else None
        folds.append(Fold(k + 1, np.flatnonzero(train), np.flatnonzero(test), pd.Timestamp(lo), last))
    return folds


def _stratified(groups: np.ndarray, lead_label: np.ndarray, n_folds: int, seed: int) -> list[Fold]:
    leads = np.arange(len(lead_label))
    n_splits = max(2, min(n_folds, int(lead_label.sum()), int((1 - lead_label).sum())))
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = []
    for k, (_, test_leads) in enumerate(splitter.split(leads, lead_label), start=1):
        test = np.isin(groups, test_leads)
        folds.append(Fold(k, np.flatnonzero(~test), np.flatnonzero(test)))
    return folds


def _both_classes(y: np.ndarray) -> bool:
    return len(y) > 0 and 0 < int(y.sum()) < len(y)


def inner_split(frame: pd.DataFrame, positions: np.ndarray, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(fit, validation) positions inside a fold's training rows, by lead; None if one side lacks a class."""
    sub = frame.iloc[positions]
    groups = lead_codes(sub)
    y = sub["label"].to_numpy(dtype=int)
    uniq = np.unique(groups)
    if kind == "time":
        entry = pd.Series(sub["as_of"].to_numpy()).groupby(groups).min().sort_values(kind="stable")
        val_leads = entry.index.to_numpy()[int(np.floor(len(entry) * (1 - VALID_SHARE))):]
    else:
        lead_label = pd.Series(y).groupby(groups).max().reindex(uniq).to_numpy()
        try:
            _, val_leads = train_test_split(uniq, test_size=VALID_SHARE, stratify=lead_label, random_state=seed)
        except ValueError:
            return None
    val = np.isin(groups, val_leads)
    if not (_both_classes(y[val]) and _both_classes(y[~val])):
        return None
    return positions[~val], positions[val]


# -- running the candidates -----------------------------------------------------------------
def run_backtest(
    defs: Definitions,
    frame: pd.DataFrame,
    kind: str,
    lightgbm: list[LightGBMParams],
    n_folds: int | None = None,
    seed: int = 42,
    n_boot: int = N_BOOT,
) -> Backtest:
    """Points rules, logistic regression and each LightGBM setting on the same folds.

    Every model learns from all snapshot rows of its fold; metrics judge the test leads' entry rows.
    """
    folds = make_folds(frame, kind, n_folds, seed)
    pooled = np.concatenate([f.test for f in folds])
    fold_of = np.concatenate([np.full(len(f.test), f.number) for f in folds])
    y_all = frame["label"].to_numpy(dtype=int)
    X_all = frame[defs.feature_keys]
    names = {"points": "points", "logreg": "logreg"} | {f"lightgbm_{i}": "lightgbm" for i in range(1, len(lightgbm) + 1)}
    scores: dict[str, list[np.ndarray]] = {n: [] for n in names}
    margins: dict[str, list[np.ndarray]] = {n: [] for n in names if names[n] == "lightgbm"}
    trees: dict[str, list[int]] = {n: [] for n in margins}
    for fold in folds:
        X_train, y_train, X_test = X_all.iloc[fold.train], y_all[fold.train], X_all.iloc[fold.test]
        scores["points"].append(bl.points_proba(defs, X_train, y_train, X_test))
        scores["logreg"].append(bl.logreg_proba(defs, bl.fit_logreg(defs, X_train, y_train), X_test))
        inner = inner_split(frame, fold.train, kind, seed)
        fit_pos, val_pos = inner if inner is not None else (fold.train, None)
        encoder = FeatureEncoder.fit(X_all.iloc[fit_pos], defs.feature_keys, categorical_keys(defs))
        X_fit, y_fit = X_all.iloc[fit_pos], y_all[fit_pos]
        X_val, y_val = (X_all.iloc[val_pos], y_all[val_pos]) if val_pos is not None else (X_train, y_train)
        for i, params in enumerate(lightgbm, start=1):
            name = f"lightgbm_{i}"
            stop = (X_val, y_val) if val_pos is not None else (None, None)
            booster = train_booster(defs, encoder, X_fit, y_fit, params, *stop)
            margin = np.asarray(booster.predict(encoder.transform(X_test), raw_score=True))
            # Each fold's probabilities are calibrated on its own validation slice (before its cut).
            cal = fit_calibration(np.asarray(booster.predict(encoder.transform(X_val), raw_score=True)), y_val)
            scores[name].append(sigmoid(cal.apply(margin)))
            margins[name].append(margin)
            trees[name].append(int(booster.num_trees()))
    y = y_all[pooled]
    groups = lead_codes(frame)[pooled]
    entry = entry_rows(frame)[pooled]
    runs: dict[str, CandidateRun] = {}
    for name, kind_of in names.items():
        chosen = lightgbm[int(name.split("_")[1]) - 1] if kind_of == "lightgbm" else None
        score = np.concatenate(scores[name])
        run = CandidateRun(name, kind_of, chosen, score, True, trees=trees.get(name, []))
        if name in margins:
            run.margin = np.concatenate(margins[name])
        run.folds = []
        for f in folds:
            in_fold = fold_of == f.number
            judged = in_fold & entry
            metrics = ev_mod.score_metrics(y[judged], score[judged])
            metrics["roc_auc_all_snapshots"] = ev_mod.score_metrics(y[in_fold], score[in_fold])["roc_auc"]
            run.folds.append(metrics)
        run.pooled = ev_mod.score_metrics(y[entry], score[entry])
        run.roc_auc_ci = auc_interval(y[entry], score[entry], groups[entry], n_boot, seed)
        run.roc_auc_all_snapshots = ev_mod.score_metrics(y, score)["roc_auc"]
        runs[name] = run
    return Backtest(kind, folds, pooled, fold_of, y, groups, runs, n_boot, seed, entry)


def describe(run: CandidateRun) -> str:
    """'LightGBM (15 leaves, ...)' / 'Logistic regression' / 'Points rules', for people."""
    if run.params is None:
        return KIND_NAMES[run.kind]
    p = run.params
    return f"LightGBM ({p.num_leaves} leaves, >= {p.min_data_in_leaf} rows a leaf, L2 {p.lambda_l2:g}, rate {p.learning_rate:g})"


# -- bootstrap ------------------------------------------------------------------------------
def weighted_auc(y: np.ndarray, level: np.ndarray, w: np.ndarray) -> float:
    """ROC AUC with row weights; `level` = rank of each row's score (ties share a level)."""
    n_levels = int(level.max()) + 1
    pos = np.bincount(level, weights=w * y, minlength=n_levels)
    neg = np.bincount(level, weights=w * (1 - y), minlength=n_levels)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


def _lead_weights(groups: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Per resample of leads: how often each row's lead was drawn (one array at a time: memory)."""
    codes, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, len(codes), size=len(codes)), minlength=len(codes))
        yield counts[inverse].astype(float)


def auc_interval(
    y: np.ndarray, score: np.ndarray, groups: np.ndarray | None = None, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of ROC AUC, resampling leads (rows when `groups` is None)."""
    y = np.asarray(y, dtype=float)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    ranks = np.unique(np.asarray(score, dtype=float), return_inverse=True)[1]
    values = np.array([weighted_auc(y, ranks, w) for w in _lead_weights(groups, n_boot, seed)])
    values = values[np.isfinite(values)]
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def paired_auc_difference(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, groups: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Interval of AUC(a) - AUC(b) when both score the same rows: each resample scores both."""
    y = np.asarray(y, dtype=float)
    ra = np.unique(np.asarray(a, dtype=float), return_inverse=True)[1]
    rb = np.unique(np.asarray(b, dtype=float), return_inverse=True)[1]
    diffs = np.array([weighted_auc(y, ra, w) - weighted_auc(y, rb, w) for w in _lead_weights(groups, n_boot, seed)])
    diffs = diffs[np.isfinite(diffs)]
    tail = (1 - level) / 2 * 100
    return float(np.percentile(diffs, tail)), float(np.percentile(diffs, 100 - tail))


# -- chart ----------------------------------------------------------------------------------
def fold_chart(bt: Backtest, path: Path) -> Path:
    """ROC AUC of every candidate, fold by fold, with the pooled figure and its interval."""
    fig = Figure(figsize=(8, 5.5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title("Backtest: ROC AUC per fold (each tested on leads it did not learn from)", fontsize=12, loc="left")
    x = [f.number for f in bt.folds]
    for run in bt.candidates.values():
        aucs = [m["roc_auc"] for m in run.folds]
        lo, hi = run.roc_auc_ci
        ax.plot(x, aucs, marker="o", label=f"{describe(run)}: pooled {run.roc_auc:.3f} [{lo:.3f}, {hi:.3f}]")
    ax.axhline(0.5, color="#999999", ls="--", label="Coin flip")
    ax.set_xticks(x)
    ax.set_xlabel("Fold (later folds test newer leads)" if bt.kind == "time" else "Fold")
    ax.set_ylabel("ROC AUC")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path

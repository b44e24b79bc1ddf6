"""How good a score is on the test rows: numbers (MLflow metrics) and charts (PNG artifacts).

Charts are drawn on bare matplotlib `Figure`s (Agg canvas, no pyplot state), titled and
labelled in the definitions' words so a marketer can open them without a glossary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score, roc_curve

from samepage.bundle import Bundle, ModelBundle
from samepage.definitions import Definitions

METRIC_NAMES = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift")
COLORS = {"LightGBM (calibrated)": "#1f6feb", "Points rules": "#d29922", "Logistic regression": "#8250df"}


def score_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), Brier, log loss and top-decile lift of probabilities."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-12, 1 - 1e-12), labels=[0, 1])),
        "ece": expected_calibration_error(y, p),
        "top_decile_lift": top_share_lift(y, p, 0.1),
    }


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean prediction| over equal-count bins, weighted by bin size."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        total += len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
    return float(total / len(y))


def ranking_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """For scores that are not probabilities (the points rules): only ranking metrics apply."""
    y = np.asarray(y, dtype=int)
    return {
        "roc_auc": float(roc_auc_score(y, score)),
        "pr_auc": float(average_precision_score(y, score)),
        "top_decile_lift": top_share_lift(y, score, 0.1),
    }


def top_share_lift(y: np.ndarray, score: np.ndarray, share: float) -> float:
    """Positive rate among the top `share` of rows by score, over the overall positive rate."""
    y = np.asarray(y, dtype=float)
    k = max(1, int(np.ceil(share * len(y))))
    top = np.argsort(-np.asarray(score, dtype=float), kind="stable")[:k]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def gains_table(y: np.ndarray, score: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Per decile of score (highest first): leads, SQLs, SQL rate, lift, cumulative share of SQLs."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    groups = np.array_split(y[order], bins)
    total, base = y.sum(), y.mean()
    rows, cum = [], 0.0
    for i, g in enumerate(groups, start=1):
        cum += g.sum()
        rows.append(
            {
                "decile": i,
                "leads": len(g),
                "sqls": int(g.sum()),
                "sql_rate": float(g.mean()) if len(g) else 0.0,
                "lift": float(g.mean() / base) if len(g) and base else 0.0,
                "cumulative_share_of_leads": float(sum(len(x) for x in groups[:i]) / len(y)),
                "cumulative_share_of_sqls": float(cum / total) if total else 0.0,
            }
        )
    return pd.DataFrame(rows)


def importance_summary(
    defs: Definitions, bundle: Bundle, frame: pd.DataFrame, max_rows: int = 3000, seed: int = 0
) -> pd.DataFrame:
    """Mean |contribution| in log-odds (the exact explanation serving shows) and split gain.

    Contributions cost ~1 ms a row, so at most `max_rows` rows (a fixed random sample) are used.
    """
    if len(frame) > max_rows:
        frame = frame.sample(max_rows, random_state=seed)
    X = bundle.encoder.transform(frame)
    _, contrib = bundle.contributions(X)
    # Split gain exists for trees only; other kinds report their share of the mean |contribution|.
    if isinstance(bundle, ModelBundle):
        gain = bundle.booster.feature_importance(importance_type="gain")
    else:
        gain = np.abs(contrib).mean(axis=0)
    labels = defs.feature_labels
    table = pd.DataFrame(
        {
            "feature": bundle.feature_keys,
            "label": [labels.get(k, k) for k in bundle.feature_keys],
            "mean_abs_contribution": np.abs(contrib).mean(axis=0),
            "mean_contribution": contrib.mean(axis=0),
            "gain_share": gain / gain.sum() if gain.sum() > 0 else gain,
        }
    )
    return table.sort_values("mean_abs_contribution", ascending=False, ignore_index=True)


# -- charts ---------------------------------------------------------------------------------
def _fig(title: str, subtitle: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(8, 5.5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=13, loc="left")
    fig.suptitle(subtitle, fontsize=9, x=0.01, ha="left", color="#555555")
    ax.grid(True, alpha=0.3)
    return fig, ax


def reliability_chart(y: np.ndarray, probs: dict[str, np.ndarray], target: str, path: Path) -> Path:
    fig, ax = _fig("Calibration: predicted vs. observed SQL rate", f"Test leads, {len(y):,}; 10 equal-count bins")
    ax.plot([0, 1], [0, 1], ls="--", color="#999999", label="Perfect calibration")
    for name, p in probs.items():
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=name, color=COLORS.get(name))
    ax.set_xlabel(f"Predicted probability of reaching {target}")
    ax.set_ylabel(f"Observed share that reached {target}")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    return _save(fig, path)


def lift_chart(y: np.ndarray, scores: dict[str, np.ndarray], target: str, path: Path) -> Path:
    fig, ax = _fig(f"Lift by score decile: how much richer in {target}s than average", f"Test leads, {len(y):,}")
    width = 0.8 / max(1, len(scores))
    for i, (name, s) in enumerate(scores.items()):
        table = gains_table(y, s)
        ax.bar(table["decile"] + (i - (len(scores) - 1) / 2) * width, table["lift"], width, label=name, color=COLORS.get(name))
    ax.axhline(1.0, color="#999999", ls="--", label="Average lead")
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("Score decile (1 = highest-scored 10% of leads)")
    ax.set_ylabel(f"{target} rate / average {target} rate")
    ax.legend()
    return _save(fig, path)


def gain_chart(y: np.ndarray, scores: dict[str, np.ndarray], target: str, path: Path) -> Path:
    fig, ax = _fig(f"Cumulative gain: share of all {target}s found by working the top-scored leads", f"Test leads, {len(y):,}")
    ax.plot([0, 1], [0, 1], ls="--", color="#999999", label="Random order")
    for name, s in scores.items():
        order = np.argsort(-np.asarray(s, dtype=float), kind="stable")
        found = np.concatenate([[0.0], np.cumsum(np.asarray(y)[order]) / max(1, np.sum(y))])
        ax.plot(np.linspace(0, 1, len(found)), found, label=name, color=COLORS.get(name))
    ax.set_xlabel("Share of leads worked, highest score first")
    ax.set_ylabel(f"Share of all {target}s found")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    return _save(fig, path)


def roc_chart(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = _fig("ROC curve: the model against both baselines", f"Test leads, {len(y):,}")
    ax.plot([0, 1], [0, 1], ls="--", color="#999999", label="Random (AUC 0.5)")
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.3f})", color=COLORS.get(name))
    ax.set_xlabel("False positive rate (share of non-SQLs flagged)")
    ax.set_ylabel("True positive rate (share of SQLs flagged)")
    ax.legend(loc="lower right")
    return _save(fig, path)


def importance_chart(table: pd.DataFrame, path: Path, top: int = 20) -> Path:
    shown = table.head(top).iloc[::-1]
    fig = Figure(figsize=(10, 0.35 * len(shown) + 1.8), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.barh(shown["label"], shown["mean_abs_contribution"], color="#1f6feb")
    # Titled on the figure, not the axes: long feature labels push the axes to the right.
    fig.suptitle("What moves the score: mean |contribution| on test leads", fontsize=13, x=0.01, ha="left")
    ax.set_xlabel("Average effect on the score, in log-odds (either direction)")
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path

"""Drift: the newest period against the history the model learns from, per feature and in the base rate.

PSI (population stability index) per feature: numbers binned by the history's deciles, categories
by level (missing is a bin of its own); share of recent numeric values outside the history's
range; categories the history never saw. Warnings name features in the definitions' words. The
thresholds are the usual rules of thumb: PSI > 0.25 is a shift worth acting on, a base rate that
moved by more than x1.5 (or under x0.67) changes what a score means.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from samepage.definitions import Definitions

PSI_WARN = 0.25
OUT_OF_RANGE_WARN = 0.05
UNSEEN_WARN = 0.05
RATE_UP, RATE_DOWN = 1.5, 0.67
_EPS = 1e-4  # an empty bin would make PSI infinite; this floor keeps one new level finite but large


def numeric_keys(defs: Definitions) -> list[str]:
    return [f.key for f in defs.features if not f.is_categorical]


def _numbers(col: pd.Series) -> np.ndarray:
    return pd.to_numeric(col.astype("object"), errors="coerce").to_numpy(dtype=float)


def feature_ranges(defs: Definitions, frame: pd.DataFrame) -> dict[str, list[float]]:
    """{numeric key: [min, max]} of the training rows (serving counts requests outside them)."""
    out = {}
    for key in numeric_keys(defs):
        x = _numbers(frame[key])
        x = x[np.isfinite(x)]
        if len(x):
            out[key] = [float(x.min()), float(x.max())]
    return out


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two bin-count vectors (same bins)."""
    e = np.maximum(expected / max(expected.sum(), 1), _EPS)
    a = np.maximum(actual / max(actual.sum(), 1), _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric_drift(history: np.ndarray, recent: np.ndarray) -> tuple[float, float]:
    h, r = history[np.isfinite(history)], recent[np.isfinite(recent)]
    if len(h) == 0:
        return 0.0, 0.0
    edges = np.unique(np.quantile(h, np.linspace(0.1, 0.9, 9)))
    def counts(x: np.ndarray, all_values: np.ndarray) -> np.ndarray:
        binned = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
        return np.append(binned, (~np.isfinite(all_values)).sum())  # missing: its own bin
    value = psi(counts(h, history).astype(float), counts(r, recent).astype(float))
    outside = float(((r < h.min()) | (r > h.max())).mean()) if len(r) else 0.0
    return value, outside


def _categorical_drift(history: pd.Series, recent: pd.Series) -> tuple[float, float, list[str]]:
    h = history.astype("string").fillna("(missing)")
    r = recent.astype("string").fillna("(missing)")
    levels = sorted(set(h.unique()))
    unseen = r[~r.isin(levels)]
    hc = h.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
    rc = r.value_counts().reindex(levels, fill_value=0).to_numpy(dtype=float)
    value = psi(np.append(hc, 0.0), np.append(rc, float(len(unseen))))
    share = float(len(unseen) / len(r)) if len(r) else 0.0
    return value, share, sorted(unseen.unique().tolist())[:10]


def drift_report(
    defs: Definitions, history: pd.DataFrame, recent: pd.DataFrame, basis: str
) -> dict[str, Any]:
    """The contract's `drift` object; `history`/`recent` hold feature columns and `label`."""
    labels = defs.feature_labels
    rate_train = float(history["label"].mean()) if len(history) else float("nan")
    rate_recent = float(recent["label"].mean()) if len(recent) else float("nan")
    features: list[dict[str, Any]] = []
    warnings: list[str] = []
    for f in defs.features:
        name = f"{labels.get(f.key, f.key)} ({f.key})"
        if f.is_categorical:
            value, unseen_share, unseen = _categorical_drift(history[f.key], recent[f.key])
            row = {"feature": f.key, "psi": value, "out_of_range_share": 0.0, "unseen_share": unseen_share, "unseen": unseen}
            if unseen_share > UNSEEN_WARN:
                seen = ", ".join(unseen[:3])
                warnings.append(f"{name}: {unseen_share:.0%} of the newest leads have values the history never saw ({seen})")
        else:
            value, outside = _numeric_drift(_numbers(history[f.key]), _numbers(recent[f.key]))
            row = {"feature": f.key, "psi": value, "out_of_range_share": outside}
            if outside > OUT_OF_RANGE_WARN:
                warnings.append(f"{name}: {outside:.0%} of the newest leads fall outside the training range")
        if value > PSI_WARN:
            warnings.insert(0, f"{name} shifted: PSI {value:.2f} between the newest leads and the history (> {PSI_WARN})")
        features.append(row)
    features.sort(key=lambda r: -r["psi"])
    if rate_train > 0 and np.isfinite(rate_recent):
        ratio = rate_recent / rate_train
        if ratio > RATE_UP or ratio < RATE_DOWN:
            target = defs.label.target_stage.upper()
            said = f"{rate_recent:.1%} of the newest leads reached {target} vs {rate_train:.1%} before (x{ratio:.2f})"
            warnings.insert(0, f"base rate changed: {said}")
    return {
        "basis": basis,
        "n_history": int(len(history)),
        "n_recent": int(len(recent)),
        "base_rate": {"train": rate_train, "recent": rate_recent},
        "features": features,
        "warnings": warnings,
    }

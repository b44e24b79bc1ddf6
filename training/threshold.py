"""The MQL threshold that keeps every rep busy: sales capacity against the weekly lead volume.

Capacity is `sla.capacity.reps × mqls_per_rep_per_week`. The weekly volume is the average
number of new leads per week over the last `VOLUME_WEEKS` weeks before the data horizon. The
threshold is the calibrated score of the k-th best test lead, k = capacity / volume × test leads
(each lead once, at its entry row: later snapshots would count a lead several times, and the
volume is of new leads):
sending every lead at or above it fills the capacity. For it and for the threshold currently in
the definitions we report the expected MQLs a week and the SQL rate observed on the test rows
at or above it (what sales would have seen), plus the mean predicted probability there.
A lead counts as an MQL only when it also meets every required criterion (`eligible`, from
`samepage.criteria.criteria_met` on the test leads' values): the capacity threshold is read off
the eligible leads, and every figure counts only them. `threshold_point` is THE figure: the
definitions preview (`training.impact`) calls it on the champion's stored out-of-time predictions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from samepage.definitions import Definitions

VOLUME_WEEKS = 13


@dataclass
class ThresholdPoint:
    value: float
    share_of_leads: float
    expected_mql_per_week: float
    expected_sql_rate: float
    predicted_sql_rate: float


@dataclass
class ThresholdAdvice:
    capacity_per_week: int
    weekly_leads: float
    volume_basis: str
    capacity: ThresholdPoint
    current: ThresholdPoint

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metric names (`threshold_*` fills capacity, `current_threshold_*` is today's)."""
        out: dict[str, float] = {"capacity_mqls_per_week": float(self.capacity_per_week), "weekly_leads": self.weekly_leads}
        for prefix, point in (("threshold", self.capacity), ("current_threshold", self.current)):
            for key, value in asdict(point).items():
                out[f"{prefix}_{key}"] = float(value)
        return out


def weekly_volume(as_of: pd.Series, horizon: pd.Timestamp | None, weeks: int = VOLUME_WEEKS) -> tuple[float, str]:
    """New leads a week and how that figure was found (said in the run so nobody has to guess)."""
    if horizon is None or as_of.nunique() <= 1:
        return float(len(as_of)), "the data has no timestamps: the whole file is taken as one week of leads"
    span_start = max(as_of.min(), horizon - pd.Timedelta(weeks=weeks))
    span_weeks = max((horizon - span_start) / pd.Timedelta(weeks=1), 1.0)
    recent = int(((as_of > span_start) & (as_of <= horizon)).sum())
    return recent / span_weeks, f"mean new leads a week over the {span_weeks:.1f} weeks before {horizon:%Y-%m-%d}"


def threshold_point(
    threshold: float, y: np.ndarray, p: np.ndarray, weekly_leads: float, eligible: np.ndarray | None = None
) -> ThresholdPoint:
    """What sales would have seen at `threshold`: the share of test leads that are MQLs (score at or
    above it and, when `eligible` is given, every criterion met), times the weekly volume, and the
    SQL rate among them."""
    chosen = p >= threshold
    if eligible is not None:
        chosen &= np.asarray(eligible, dtype=bool)
    share = float(chosen.mean())
    return ThresholdPoint(
        value=float(threshold),
        share_of_leads=share,
        expected_mql_per_week=share * weekly_leads,
        expected_sql_rate=float(y[chosen].mean()) if chosen.any() else 0.0,
        predicted_sql_rate=float(p[chosen].mean()) if chosen.any() else 0.0,
    )


def capacity_threshold(
    defs: Definitions,
    y: np.ndarray,
    p: np.ndarray,
    weekly_leads: float,
    volume_basis: str = "",
    eligible: np.ndarray | None = None,
) -> ThresholdAdvice:
    """`y`, `p`: outcomes and calibrated scores of the test leads (the newest leads, one entry row each);
    `eligible`: which of them meet every MQL criterion (None: all)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(p) == 0:
        raise ValueError("no test rows to set a threshold on")
    capacity = defs.sla.capacity.mqls_per_week
    share = capacity / weekly_leads if weekly_leads > 0 else 1.0
    ranked = np.sort(p if eligible is None else p[np.asarray(eligible, dtype=bool)])[::-1]
    k = max(1, int(np.floor(share * len(p)))) if share < 1.0 else len(p)
    # Sales can work every eligible lead (or more): no reason to hold any back.
    threshold = 0.0 if k >= len(ranked) else float(ranked[k - 1])
    return ThresholdAdvice(
        capacity_per_week=capacity,
        weekly_leads=float(weekly_leads),
        volume_basis=volume_basis,
        capacity=threshold_point(threshold, y, p, weekly_leads, eligible),
        current=threshold_point(defs.mql.threshold, y, p, weekly_leads, eligible),
    )

"""Platt calibration by cross-fitting: fit `p = sigmoid(a * margin + b)` on margins the model
did not learn from (out-of-fold), so the registered model can learn from every row.

A slope that is not positive means the margins do not rank the rows they are scored on; then the
calibration is flat (`a = 0`, `b` = the base rate in log-odds) and says so, instead of failing:
such a model scores every lead alike and the quality floor keeps it from being promoted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samepage.values import logit
from training.models import platt


@dataclass(frozen=True)
class Calibration:
    a: float
    b: float
    rows: int
    note: str = "platt"

    def apply(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of raw margins."""
        return self.a * np.asarray(margin, dtype=float) + self.b


def fit_calibration(margin: np.ndarray, y: np.ndarray) -> Calibration:
    """Platt on (out-of-fold) margins; flat at the base rate when they do not rank."""
    y = np.asarray(y, dtype=int)
    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6)) if len(y) else 0.5
    if len(y) == 0 or y.min() == y.max():
        return Calibration(0.0, logit(rate), len(y), "flat: one class only")
    try:
        a, b = platt(margin, y)
    except ValueError:
        return Calibration(0.0, logit(rate), len(y), "flat: the margins do not rank these rows (slope <= 0)")
    return Calibration(a, b, len(y))

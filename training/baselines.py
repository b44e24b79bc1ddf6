"""The two baselines the champion candidate must beat, on the same split.

(a) Points: the team's own scoring rules from the definitions' `points` (what marketing
automation scores by today), or, for definitions without them, the rules the feature kinds imply
(`samepage.points.derived_points`). No learning: it shows what the shared vocabulary alone
ranks. Evaluated by `samepage.points`, the same code the points bundle serves with.

(b) A logistic regression on every feature (`samepage.linear`): numbers imputed (median, with a
missing flag), signed-log transformed and standardised; categories one-hot with rare levels
pooled. Fitted on the whole train period; a bundle, so it explains itself exactly if it serves.

Both are candidates too: when one wins the backtest it is what gets registered
(`fit_points`, `fit_logreg` on every labelled row, the same settings as in the folds).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from samepage.bundle import PointsBundle
from samepage.definitions import Definitions
from samepage.linear import LogRegBundle, fit_logreg_bundle
from samepage.points import describe_rules, team_points

LOGREG_C = 1.0  # L2 strength: features are standardised, so the default holds from 1k to 1M leads
LOGREG_MIN_FREQUENCY = 20  # rarer category levels are pooled, so no one-hot column rests on a handful


def points_rules(defs: Definitions) -> list[dict[str, Any]]:
    """The rule table for these definitions (logged with the run so people can read it)."""
    return describe_rules(team_points(defs), defs)


def points_score(defs: Definitions, frame: pd.DataFrame) -> np.ndarray:
    """Total points per row of a feature frame; missing values score nothing."""
    return PointsBundle.from_definitions(defs).total_points(frame)


def fit_points(defs: Definitions, frame: pd.DataFrame, y: np.ndarray) -> PointsBundle:
    """The team's rules with their scale fitted to `y` (Platt on the total); the points scale itself
    when the rules do not rank these outcomes (a flat or inverted fit would misstate every rule)."""
    try:
        return PointsBundle.fit(defs, frame, y)
    except ValueError:
        return PointsBundle.from_definitions(defs)


def points_proba(defs: Definitions, X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame) -> np.ndarray:
    """Probabilities from the rules fitted on a fold's training rows (ranks exactly as the raw points do)."""
    return fit_points(defs, X_train, y_train).predict_proba(X_test[defs.feature_keys])


def fit_logreg(defs: Definitions, frame: pd.DataFrame, y: np.ndarray) -> LogRegBundle:
    """Logistic regression with the one setting the backtest tries (`LOGREG_C`, `LOGREG_MIN_FREQUENCY`)."""
    return fit_logreg_bundle(defs, frame, y, C=LOGREG_C, min_frequency=LOGREG_MIN_FREQUENCY)


def logreg_proba(defs: Definitions, model: LogRegBundle, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(frame[defs.feature_keys])

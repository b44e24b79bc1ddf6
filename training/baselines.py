"""The two baselines the champion candidate must beat, on the same split.

(a) Points: the team's own scoring rules from the definitions' `points` (what marketing
automation scores by today), or, for definitions without them, the rules the feature kinds imply
(`samepage.points.derived_points`). No learning: it shows what the shared vocabulary alone
ranks. Evaluated by `samepage.points`, the same code the points bundle serves with.

(b) A logistic regression on every feature (`samepage.linear`): numbers imputed (median, with a
missing flag), signed-log transformed and standardised; categories one-hot with rare levels
pooled. Fitted on the whole train period; a bundle, so it explains itself exactly if it serves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from samepage.bundle import PointsBundle
from samepage.definitions import Definitions
from samepage.linear import LogRegBundle, fit_logreg_bundle
from samepage.points import describe_rules, team_points


def points_rules(defs: Definitions) -> list[dict[str, Any]]:
    """The rule table for these definitions (logged with the run so people can read it)."""
    return describe_rules(team_points(defs), defs)


def points_score(defs: Definitions, frame: pd.DataFrame) -> np.ndarray:
    """Total points per row of a feature frame; missing values score nothing."""
    return PointsBundle.from_definitions(defs).total_points(frame)


def fit_logreg(defs: Definitions, frame: pd.DataFrame, y: np.ndarray) -> LogRegBundle:
    return fit_logreg_bundle(defs, frame, y)


def logreg_proba(defs: Definitions, model: LogRegBundle, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(frame[defs.feature_keys])

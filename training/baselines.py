"""The two baselines the champion candidate must beat, on the same split.

(a) Points: the rule score marketing automation computes today, derived from the definitions
(no learning, so it shows what the shared vocabulary alone ranks). The rules, per feature:

- `icp_match` (industry, size, country, persona in the ICP): +15 points when it matches.
- `event_count` with `direction: up` (pricing views, webinars attended, demo/trial requests):
  +10 points per event, at most 3 events counted.
- `event_count` with `direction: down` (unsubscribes): -25 points per event.
- any other `event_count` (page views, email opens/clicks, downloads, registrations):
  +2 points per event, at most 10 events counted.
- Only the longest window of each event type counts, so one page view is not scored three
  times through its 7/30/90-day features.
- `distinct_channels`: +5 points per channel.
- `recency`: -1 point per full week since the last activity, at most -20.
- attributes and age: no points (the ICP rules cover fit).

(b) A scikit-learn logistic regression on every feature: numbers imputed (median, with a
missing flag), signed-log transformed and standardised; categories one-hot with rare levels
pooled. Fitted on the whole train period.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from samepage.definitions import Definitions, Feature

ICP_POINTS = 15.0
UP_POINTS, UP_CAP = 10.0, 3
DOWN_POINTS = -25.0
OTHER_POINTS, OTHER_CAP = 2.0, 10
CHANNEL_POINTS = 5.0
WEEK_INACTIVE_POINTS, RECENCY_FLOOR = -1.0, -20.0


def points_rules(defs: Definitions) -> list[dict[str, Any]]:
    """The rule table for these definitions (logged with the run so people can read it)."""
    longest: dict[str, Feature] = {}
    for f in defs.features:
        if f.kind == "event_count" and f.event_type is not None:
            best = longest.get(f.event_type)
            if best is None or (f.window_days or 0) > (best.window_days or 0):
                longest[f.event_type] = f
    rules: list[dict[str, Any]] = []
    for f in defs.features:
        if f.kind == "icp_match":
            rules.append(_rule(f, "match", ICP_POINTS, None))
        elif f.kind == "event_count" and longest.get(f.event_type or "") is f:
            if f.direction == "up":
                rules.append(_rule(f, "per_event", UP_POINTS, UP_CAP))
            elif f.direction == "down":
                rules.append(_rule(f, "per_event", DOWN_POINTS, None))
            else:
                rules.append(_rule(f, "per_event", OTHER_POINTS, OTHER_CAP))
        elif f.kind == "distinct_channels":
            rules.append(_rule(f, "per_event", CHANNEL_POINTS, None))
        elif f.kind == "recency":
            rules.append(_rule(f, "per_week", WEEK_INACTIVE_POINTS, None, floor=RECENCY_FLOOR))
    return rules


def _rule(f: Feature, how: str, points: float, cap: int | None, floor: float | None = None) -> dict[str, Any]:
    return {"feature": f.key, "label": f.label, "how": how, "points": points, "cap": cap, "floor": floor}


def points_score(defs: Definitions, frame: pd.DataFrame) -> np.ndarray:
    """Total points per row; missing values score nothing."""
    total = np.zeros(len(frame))
    for rule in points_rules(defs):
        x = pd.to_numeric(frame[rule["feature"]].astype("object"), errors="coerce").fillna(0).to_numpy(float)
        if rule["how"] == "match":
            total += rule["points"] * (x > 0)
        elif rule["how"] == "per_event":
            counted = np.minimum(x, rule["cap"]) if rule["cap"] is not None else x
            total += rule["points"] * np.maximum(counted, 0)
        else:  # per_week
            total += np.maximum(rule["points"] * np.floor(np.maximum(x, 0) / 7.0), rule["floor"])
    return total


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def logistic_regression(defs: Definitions) -> Pipeline:
    categorical = [f.key for f in defs.features if f.is_categorical]
    numeric = [k for k in defs.feature_keys if k not in categorical]
    pre = ColumnTransformer(
        [
            (
                "numbers",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    FunctionTransformer(_signed_log),
                    StandardScaler(),
                ),
                numeric,
            ),
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="(missing)"),
                    OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20),
                ),
                categorical,
            ),
        ]
    )
    return Pipeline([("features", pre), ("model", LogisticRegression(C=1.0, max_iter=2000))])


def logreg_inputs(defs: Definitions, frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as strings (missing: NaN), everything else as float."""
    out = {}
    for f in defs.features:
        col = frame[f.key]
        if f.is_categorical:
            out[f.key] = col.astype("string").astype("object").where(col.notna(), np.nan)
        else:
            out[f.key] = pd.to_numeric(col.astype("object"), errors="coerce").astype(float)
    return pd.DataFrame(out, index=frame.index)


def fit_logreg(defs: Definitions, frame: pd.DataFrame, y: np.ndarray) -> Pipeline:
    model = logistic_regression(defs)
    model.fit(logreg_inputs(defs, frame), y)
    return model


def logreg_proba(defs: Definitions, model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(logreg_inputs(defs, frame))[:, 1]

"""The team's points rules, evaluated once: points per feature on the matrix the models see.

The rules are the definitions' `points` (or, for definitions without them, the rules
marketing automation derives from the feature kinds). They read the `FeatureEncoder`'s matrix:
a category as its code into the encoder's categories, a yes/no as 1/0, a number as itself, a
missing (or unseen) value as NaN, which scores nothing. The points bundle, the training baseline
and the lead page all evaluate points here, so they cannot disagree.
"""

from __future__ import annotations

import math

import numpy as np

from samepage.definitions import Definitions, Feature, Points, PointsRule, PointsScale
from samepage.values import parse_bool

# Today's derived rules, for definitions without `points` (what the baseline scored before).
ICP_POINTS = 15.0
UP_POINTS, UP_CAP = 10.0, 3
DOWN_POINTS = -25.0
OTHER_POINTS, OTHER_CAP = 2.0, 10
CHANNEL_POINTS = 5.0
WEEK_INACTIVE_POINTS, INACTIVE_WEEKS_CAP = -1.0, 20


def team_points(defs: Definitions) -> Points:
    """The definitions' points rules, or the derived ones when the definitions have none."""
    return defs.points if defs.points is not None else derived_points(defs)


def derived_points(defs: Definitions) -> Points:
    """The rules the feature kinds imply (ICP fit, events, channels, recency), as rule objects.

    - `icp_match`: +15 when it matches.
    - `event_count`: `direction: up` +10 an event (3 counted), `down` -25 an event, any other
      +2 an event (10 counted); only the longest window of each event type counts, so one page
      view is not scored three times through its 7/30/90-day features.
    - `distinct_channels`: +5 a channel; `recency`: -1 a full week without activity (20 counted).
    - attributes and age: no points.
    """
    longest: dict[str, Feature] = {}
    for f in defs.features:
        if f.kind == "event_count" and f.event_type is not None:
            best = longest.get(f.event_type)
            if best is None or (f.window_days or 0) > (best.window_days or 0):
                longest[f.event_type] = f
    rules: list[PointsRule] = []
    for f in defs.features:
        if f.kind == "icp_match":
            rules.append(PointsRule(feature=f.key, in_=[True], points=ICP_POINTS))
        elif f.kind == "event_count" and longest.get(f.event_type or "") is f:
            if f.direction == "up":
                rules.append(PointsRule(feature=f.key, per_unit=UP_POINTS, max_units=UP_CAP))
            elif f.direction == "down":
                rules.append(PointsRule(feature=f.key, per_unit=DOWN_POINTS))
            else:
                rules.append(PointsRule(feature=f.key, per_unit=OTHER_POINTS, max_units=OTHER_CAP))
        elif f.kind == "distinct_channels":
            rules.append(PointsRule(feature=f.key, per_unit=CHANNEL_POINTS))
        elif f.kind == "recency":
            rules.append(PointsRule(feature=f.key, per_unit=WEEK_INACTIVE_POINTS, unit=7, max_units=INACTIVE_WEEKS_CAP))
    if not rules:  # nothing to derive from: every lead gets 0 points (the scale's prior)
        return Points.model_construct(scale=PointsScale(), rules=[])
    return Points(rules=rules)


def scale_log_odds(scale: PointsScale) -> tuple[float, float]:
    """(a, b) with log-odds = a * points + b: the scorecard reading of points before outcomes."""
    a = math.log(2.0) / scale.points_per_doubling
    return a, -scale.points_at_even_odds * a


def rule_categories(points: Points, categorical: list[str]) -> dict[str, list[str]]:
    """The category values the rules name, per categorical feature: all a points encoder needs."""
    out: dict[str, set[str]] = {key: set() for key in categorical}
    for rule in points.rules:
        if rule.feature in out and rule.in_ is not None:
            out[rule.feature].update(str(v) for v in rule.in_)
    return {key: sorted(values) for key, values in out.items()}


def rule_points(rule: PointsRule, x: np.ndarray, categories: list[str] | None) -> np.ndarray:
    """One rule's points for a column of the encoded matrix (`categories` for a category column)."""
    with np.errstate(invalid="ignore"):
        if rule.per_unit is not None:
            units = np.floor(np.maximum(np.nan_to_num(x, nan=0.0), 0.0) / rule.unit)
            if rule.max_units is not None:
                units = np.minimum(units, rule.max_units)
            return rule.per_unit * units
        if rule.in_ is not None:
            if categories is not None:
                wanted = [float(i) for i, c in enumerate(categories) if c in {str(v) for v in rule.in_}]
            else:  # a yes/no column: true is 1, false is 0
                flags = [parse_bool(v) for v in rule.in_]
                wanted = [1.0 if b else 0.0 for b in flags if b is not None]
            hit = np.isin(x, wanted)
        else:
            hit = ~np.isnan(x)
            if rule.at_least is not None:
                hit &= x >= rule.at_least
            if rule.at_most is not None:
                hit &= x <= rule.at_most
    return np.where(hit, float(rule.points or 0.0), 0.0)


def points_by_feature(points: Points, feature_keys: list[str], categories: dict[str, list[str]], X: np.ndarray) -> np.ndarray:
    """(n, k) points each feature earns (the sum of its rules), columns in `feature_keys` order."""
    out = np.zeros((X.shape[0], len(feature_keys)), dtype=np.float64)
    position = {key: j for j, key in enumerate(feature_keys)}
    for rule in points.rules:
        j = position.get(rule.feature)
        if j is None:
            raise KeyError(f"points rule on {rule.feature!r}, which is not among the features {feature_keys}")
        out[:, j] += rule_points(rule, X[:, j], categories.get(rule.feature))
    return out


def describe_rules(points: Points, defs: Definitions) -> list[dict[str, object]]:
    """The rules as people read them (logged with a run, shown on the lead page)."""
    labels = defs.feature_labels
    out: list[dict[str, object]] = []
    for rule in points.rules:
        text = rule.describe(labels.get(rule.feature, rule.feature))
        out.append({**rule.model_dump(mode="json", by_alias=True, exclude_none=True), "text": text})
    return out

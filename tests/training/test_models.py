"""LightGBM candidate: calibration keeps the ranking and the explanation exact; directions hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from samepage.bundle import ModelBundle
from samepage.definitions import Definitions
from training.baselines import fit_logreg, logreg_proba, points_rules, points_score
from training.evaluate import gains_table, score_metrics, top_share_lift
from training.models import LightGBMParams, fit_lightgbm, monotone_constraints, platt

N = 3000


def synthetic_features(defs: Definitions, n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Every feature of the definitions with plausible values; the label depends on a few of them."""
    rng = np.random.default_rng(seed)
    frame = {}
    for f in defs.features:
        if f.is_categorical:
            values = np.array([f"{f.key}-{i}" for i in rng.integers(0, 6, n)], dtype=object)
            values[rng.random(n) < 0.1] = None
            frame[f.key] = values
        elif f.kind == "icp_match":
            frame[f.key] = rng.integers(0, 2, n).astype(float)
        else:
            frame[f.key] = rng.poisson(1.5, n).astype(float)
    frame = pd.DataFrame(frame)
    logit = (
        -1.5
        + 0.9 * frame["demo_requests_90d"]
        + 0.8 * frame["icp_industry"]
        - 1.0 * frame["unsubscribes_90d"]
        + np.where(frame["industry"] == "industry-1", 1.0, 0.0)
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def fitted(definitions: Definitions) -> tuple[ModelBundle, pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    train, y = synthetic_features(definitions, N, seed=1)
    cal, y_cal = synthetic_features(definitions, N // 3, seed=2)
    params = LightGBMParams(num_boost_round=60, num_leaves=7, min_data_in_leaf=20, early_stopping_rounds=0)
    bundle = fit_lightgbm(definitions, train, y, cal, y_cal, params, meta={"note": "test"})
    return bundle, train, y, cal, y_cal


def test_calibration_keeps_the_ranking(fitted) -> None:
    bundle, _, _, cal, _ = fitted
    X = bundle.encoder.transform(cal)
    raw = bundle.booster.predict(X, raw_score=True)
    p = bundle.predict_proba(cal)
    assert bundle.calib_a > 0
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(p[order]) >= 0)  # a higher margin never gets a lower probability
    assert not np.allclose(p, 1 / (1 + np.exp(-raw)))  # Platt really changed the probabilities


def test_platt_matches_the_base_rate_of_its_slice(fitted) -> None:
    bundle, _, _, cal, y_cal = fitted
    # Maximum-likelihood logistic regression with an intercept reproduces its data's mean.
    assert abs(bundle.predict_proba(cal).mean() - y_cal.mean()) < 1e-3


def test_contributions_are_exact_in_log_odds(fitted) -> None:
    bundle, _, _, cal, _ = fitted
    X = bundle.encoder.transform(cal.head(200))
    base, contrib = bundle.contributions(X)
    p = bundle.predict_proba(cal.head(200))
    np.testing.assert_allclose(base + contrib.sum(axis=1), np.log(p / (1 - p)), atol=1e-6)


def test_directions_from_the_definitions_hold(definitions: Definitions, fitted) -> None:
    bundle, _, _, cal, _ = fitted
    constraints = dict(zip(definitions.feature_keys, monotone_constraints(definitions), strict=True))
    assert constraints["demo_requests_90d"] == 1 and constraints["unsubscribes_90d"] == -1
    assert constraints["page_views_7d"] == 1 and constraints["days_since_created"] == 0  # engagement counts declare "up"
    rows = cal.head(300)
    for key, sign in (("demo_requests_90d", 1), ("pricing_views_30d", 1), ("unsubscribes_90d", -1)):
        low = bundle.predict_proba(rows.assign(**{key: 0.0}))
        high = bundle.predict_proba(rows.assign(**{key: 5.0}))
        assert np.all(sign * (high - low) >= -1e-12), key


def test_the_model_learns_the_signal(definitions: Definitions, fitted) -> None:
    bundle, *_ = fitted
    test, y_test = synthetic_features(definitions, N // 2, seed=3)
    metrics = score_metrics(y_test, bundle.predict_proba(test))
    assert metrics["roc_auc"] > 0.7
    # A bundle survives save/load and predicts the same.
    assert bundle.meta["note"] == "test" and bundle.meta["best_iteration"] == 60


def test_bundle_round_trip(tmp_path, fitted) -> None:
    bundle, _, _, cal, _ = fitted
    loaded = ModelBundle.load(bundle.save(tmp_path / "b"))
    np.testing.assert_allclose(loaded.predict_proba(cal), bundle.predict_proba(cal))


def test_platt_refuses_an_inverted_model() -> None:
    margin = np.linspace(-2, 2, 200)
    y = (margin < 0).astype(int)
    with pytest.raises(ValueError, match="slope"):
        platt(margin, y)


def test_points_rules_follow_the_definitions(definitions: Definitions) -> None:
    # Definitions without `points`: the rules derived from the feature kinds.
    derived = definitions.model_copy(update={"points": None})
    rules = {r["feature"]: r for r in points_rules(derived)}
    # One window per event type: page views count once (90 days), not three times.
    assert "page_views_90d" in rules and "page_views_7d" not in rules and "page_views_30d" not in rules
    assert rules["demo_requests_90d"]["per_unit"] > 0 and rules["unsubscribes_90d"]["per_unit"] < 0
    assert all(rules[k]["in"] == [True] for k in ("icp_industry", "icp_country", "icp_persona"))
    assert not any(definitions.feature(k).kind == "attribute" for k in rules)
    frame, _ = synthetic_features(definitions, 4, seed=0)
    frame[:] = 0
    frame = frame.astype(float)
    base = points_score(derived, frame)
    more = points_score(derived, frame.assign(demo_requests_90d=[1, 2, 3, 10.0]))
    assert list(more - base) == [10, 20, 30, 30]  # capped at three requests
    unsub = points_score(derived, frame.assign(unsubscribes_90d=1.0, icp_industry=1.0))
    assert list(unsub - base) == [-10, -10, -10, -10]
    # The shipped definitions carry the team's own rules, and the baseline scores by them.
    assert definitions.points is not None
    team = {r["feature"]: r for r in points_rules(definitions)}
    demo = team["demo_requests_90d"]
    more = points_score(definitions, frame.assign(demo_requests_90d=[1, 2, 3, 10.0]))
    assert list(more - points_score(definitions, frame)) == [demo["per_unit"] * min(n, demo["max_units"]) for n in (1, 2, 3, 10)]


def test_logistic_regression_baseline_handles_missing_and_unseen(definitions: Definitions) -> None:
    train, y = synthetic_features(definitions, 1500, seed=4)
    model = fit_logreg(definitions, train, y)
    test, _ = synthetic_features(definitions, 50, seed=5)
    test.loc[0, "industry"] = "never seen"
    test.loc[1, "employees"] = np.nan
    p = logreg_proba(definitions, model, test)
    assert p.shape == (50,) and np.all((p > 0) & (p < 1))


def test_lift_and_gains_by_hand() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0] * 2)
    score = np.arange(20)[::-1].astype(float)  # rows in order of score
    score[[0, 1, 10, 11]] = [100, 99, 98, 97]  # every positive on top
    assert top_share_lift(y, score, 0.1) == pytest.approx(1.0 / 0.2)
    table = gains_table(y, score)
    assert table.loc[1, "cumulative_share_of_sqls"] == 1.0 and table["sqls"].sum() == 4

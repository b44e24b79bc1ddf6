"""Bundle kinds: each explains itself exactly, round-trips through save/load, and says if it is calibrated."""

from __future__ import annotations

import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from samepage.bundle import BOOSTER_FILE, META_FILE, Bundle, FeatureEncoder, ModelBundle, PointsBundle
from samepage.definitions import Definitions, Points, PointsRule, PointsScale
from samepage.linear import LogRegBundle, design, fit_logreg_bundle
from samepage.points import derived_points, scale_log_odds

N = 600
Data = tuple[pd.DataFrame, np.ndarray]


def feature_frame(defs: Definitions, n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Every feature with plausible values and gaps; the outcome follows demo requests and the ICP."""
    rng = np.random.default_rng(seed)
    frame: dict[str, object] = {}
    for f in defs.features:
        if f.is_categorical:
            levels = np.array(["Software", "Retail", "Student", "VP", "Competitor", "rare"], dtype=object)
            values = rng.choice(levels, n, p=[0.3, 0.3, 0.1, 0.2, 0.07, 0.03])
            values[rng.random(n) < 0.1] = None
            frame[f.key] = values
        elif f.kind == "icp_match":
            flags = rng.integers(0, 2, n).astype(object)
            flags[rng.random(n) < 0.1] = None
            frame[f.key] = flags
        else:
            counts = rng.poisson(2.0, n).astype(float)
            counts[rng.random(n) < 0.1] = np.nan
            frame[f.key] = counts
    out = pd.DataFrame(frame)
    signal = -1.0 + 0.8 * np.nan_to_num(out["demo_requests_90d"].to_numpy(float)) + 0.7 * (out["icp_industry"] == 1)
    y = (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(int)
    return out, y


def assert_exact(bundle: Bundle, frame: pd.DataFrame) -> None:
    X = bundle.encoder.transform(frame)
    base, contrib = bundle.contributions(X)
    assert contrib.shape == (len(frame), len(bundle.feature_keys))
    assert np.max(np.abs(base + contrib.sum(axis=1) - bundle.logit(X))) < 1e-9
    p = bundle.predict_proba(frame)
    np.testing.assert_allclose(np.log(p / (1 - p)), bundle.logit(X), atol=1e-9)


def number(value: float | None) -> float:
    assert value is not None
    return value


def odd_rows(defs: Definitions, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with every value missing, and with categories training never saw."""
    odd = frame.head(4).copy()
    odd.iloc[0] = None
    for f in defs.features:
        if f.is_categorical:
            odd.loc[odd.index[1], f.key] = "never seen before"
    return odd


@pytest.fixture(scope="module")
def data(definitions: Definitions) -> tuple[pd.DataFrame, np.ndarray]:
    return feature_frame(definitions, N, seed=3)


@pytest.fixture(scope="module")
def lightgbm_bundle(definitions: Definitions, data: Data) -> ModelBundle:
    frame, y = data
    enc = FeatureEncoder.fit(frame, definitions.feature_keys, [f.key for f in definitions.features if f.is_categorical])
    params = {"objective": "binary", "verbosity": -1, "num_leaves": 7, "min_data_in_leaf": 10, "num_threads": 1}
    train_set = lgb.Dataset(enc.transform(frame), y, categorical_feature=enc.categorical_indices)
    booster = lgb.train(params, train_set, num_boost_round=15)
    return ModelBundle(enc, booster, calib_a=0.9, calib_b=-0.2)


@pytest.fixture(scope="module")
def logreg_bundle(definitions: Definitions, data: Data) -> LogRegBundle:
    frame, y = data
    return fit_logreg_bundle(definitions, frame, y)


def test_every_kind_is_exact_with_missing_and_unseen_values(
    definitions: Definitions, data: Data, lightgbm_bundle: ModelBundle, logreg_bundle: LogRegBundle
) -> None:
    frame, y = data
    scale_only = PointsBundle.from_definitions(definitions)
    fitted = PointsBundle.fit(definitions, frame, y)
    for bundle in (lightgbm_bundle, logreg_bundle, scale_only, fitted):
        assert_exact(bundle, frame)
        assert_exact(bundle, odd_rows(definitions, frame))


def test_points_contributions_are_the_rules_points_times_the_scale(definitions: Definitions) -> None:
    bundle = PointsBundle.from_definitions(definitions)
    assert not bundle.calibrated and bundle.kind == "points"
    points = definitions.points
    assert points is not None
    a, b = scale_log_odds(points.scale)
    lead = dict.fromkeys(definitions.feature_keys)
    lead.update(demo_requests_90d=5, icp_industry=True, industry="Competitor", seniority="Student")
    lead.update(unsubscribes_90d=1, days_since_last_activity=30)
    X = bundle.encoder.transform(pd.DataFrame([lead]))
    base, contrib = bundle.contributions(X)
    rules = {r.feature: r for r in points.rules}
    demo = rules["demo_requests_90d"]
    expected = {
        "demo_requests_90d": number(demo.per_unit) * min(5, number(demo.max_units)),
        "icp_industry": number(rules["icp_industry"].points),
        "industry": number(rules["industry"].points),
        "seniority": number(rules["seniority"].points),
        "unsubscribes_90d": number(rules["unsubscribes_90d"].per_unit),
        "days_since_last_activity": number(rules["days_since_last_activity"].per_unit) * 4,  # four full weeks of 7 days
    }
    got = dict(zip(bundle.feature_keys, contrib[0], strict=True))
    for key, rule_total in expected.items():
        assert got[key] == pytest.approx(rule_total * a), key
    assert all(got[k] == 0 for k in got if k not in expected)  # missing values score nothing
    assert base[0] == pytest.approx(b)
    # The scale's reading: points_at_even_odds points is a 50% chance.
    assert a * points.scale.points_at_even_odds + b == pytest.approx(0.0)


def test_points_rule_forms() -> None:
    from samepage.points import rule_points

    x = np.array([np.nan, 0.0, 6.0, 13.0, 100.0])
    assert rule_points(PointsRule(feature="f", per_unit=-1, unit=7, max_units=10), x, None).tolist() == [0, 0, 0, -1, -10]
    assert rule_points(PointsRule(feature="f", at_least=6, at_most=13, points=4), x, None).tolist() == [0, 0, 4, 4, 0]
    codes = np.array([np.nan, 0.0, 1.0, 2.0])
    assert rule_points(PointsRule(feature="f", in_=["b", "c"], points=3), codes, ["a", "b", "c"]).tolist() == [0, 0, 3, 3]
    flags = np.array([np.nan, 0.0, 1.0])
    assert rule_points(PointsRule(feature="f", in_=[False], points=-2), flags, None).tolist() == [0, -2, 0]


def test_fitted_points_keep_the_rules_and_learn_the_scale(definitions: Definitions, data: Data) -> None:
    frame, y = data
    fitted = PointsBundle.fit(definitions, frame, y)
    assert fitted.calibrated and fitted.a > 0
    total = fitted.total_points(frame)
    np.testing.assert_allclose(fitted.logit(fitted.encoder.transform(frame)), fitted.a * total + fitted.b)
    assert fitted.predict_proba(frame).mean() == pytest.approx(y.mean(), abs=1e-3)  # Platt with an intercept
    with pytest.raises(ValueError, match="do not rank"):
        PointsBundle.fit(definitions, frame, 1 - y)  # outcomes the rules rank backwards
    with pytest.raises(ValueError, match="both outcomes"):
        PointsBundle.fit(definitions, frame, np.zeros(len(y)))


def test_definitions_without_points_use_the_derived_rules(definitions: Definitions) -> None:
    bare = definitions.model_copy(update={"points": None})
    bundle = PointsBundle.from_definitions(bare)
    assert bundle.points == derived_points(bare) and bundle.meta["derived"] is True
    lead = dict.fromkeys(bare.feature_keys) | {"icp_country": 1.0, "pricing_views_90d": 2.0}
    _, contrib = bundle.contributions(bundle.encoder.transform(pd.DataFrame([lead])))
    a, _ = scale_log_odds(PointsScale())
    assert contrib.sum() == pytest.approx((15 + 2 * 10) * a)


def test_logreg_contribution_is_coefficient_times_distance_from_the_mean(logreg_bundle: LogRegBundle, data: Data) -> None:
    frame, _ = data
    assert logreg_bundle.calibrated and logreg_bundle.kind == "logreg"
    columns = logreg_bundle.column_names()
    assert "employees" in columns and "employees=(missing)" in columns and "industry=(other)" in columns  # 'rare' is pooled
    assert "industry=rare" not in columns
    X = logreg_bundle.encoder.transform(frame.head(1))
    base, contrib = logreg_bundle.contributions(X)
    j = logreg_bundle.feature_keys.index("demo_requests_90d")
    c = columns.index("demo_requests_90d")
    spec = logreg_bundle.specs[j]
    value = X[0, j] if not math.isnan(X[0, j]) else spec.median
    z = (np.sign(value) * np.log1p(abs(value)) - spec.center) / spec.scale
    flag = columns.index("demo_requests_90d=(missing)")
    coef, means = logreg_bundle.coef, logreg_bundle.means
    expected = coef[c] * (z - means[c]) + coef[flag] * (float(math.isnan(X[0, j])) - means[flag])
    assert contrib[0, j] == pytest.approx(expected)
    assert base[0] == pytest.approx(logreg_bundle.intercept + float(logreg_bundle.coef @ logreg_bundle.means))
    assert logreg_bundle.coef[c] > 0  # it learned the planted signal


def test_logreg_contributions_equal_the_design_matrixs(logreg_bundle: LogRegBundle, data: Data, definitions: Definitions) -> None:
    """Feature by feature (a table per category) gives what `(design - means) * coef`, column by column, gives."""
    frame, _ = data
    X = logreg_bundle.encoder.transform(pd.concat([frame, odd_rows(definitions, frame)]))
    cats = logreg_bundle.encoder.categorical_indices
    assert cats and all(logreg_bundle.specs[j].levels for j in cats)
    later = X[:3].copy()  # codes the encoder may give that no level has: a later one, one between levels
    later[:, cats] = np.array([[99.0], [np.nan], [float(logreg_bundle.specs[cats[0]].levels[-1] + 1)]])
    not_codes = later.copy()  # values that are no codes at all go the long way
    not_codes[:, cats] = np.array([[-2.0], [0.5], [1.0]])
    for rows in (X, later, not_codes):
        D = design(logreg_bundle.specs, rows)
        widths = [s.width() for s in logreg_bundle.specs]
        owner = np.zeros((sum(widths), len(widths)))
        owner[np.arange(sum(widths)), np.repeat(np.arange(len(widths)), widths)] = 1.0
        expected = ((D - logreg_bundle.means) * logreg_bundle.coef) @ owner
        base, contrib = logreg_bundle.contributions(rows)
        np.testing.assert_allclose(contrib, expected, rtol=0, atol=1e-12)
        logit = logreg_bundle.intercept + D @ logreg_bundle.coef
        np.testing.assert_allclose(logreg_bundle.logit(rows), logit, rtol=0, atol=1e-12)
    assert base[0] == logreg_bundle.intercept + float(logreg_bundle.coef @ logreg_bundle.means)


def test_save_and_load_round_trip_every_kind(
    tmp_path: Path, definitions: Definitions, data: Data, lightgbm_bundle: ModelBundle, logreg_bundle: LogRegBundle
) -> None:
    frame, y = data
    points = [PointsBundle.from_definitions(definitions), PointsBundle.fit(definitions, frame, y)]
    bundles: list[Bundle] = [lightgbm_bundle, logreg_bundle, *points]
    for i, bundle in enumerate(bundles):
        bundle.meta["feature_ranges"] = {"employees": [0.0, 9.0]}
        loaded = Bundle.load(bundle.save(tmp_path / str(i)))
        assert type(loaded) is type(bundle) and loaded.kind == bundle.kind
        assert loaded.calibrated == bundle.calibrated and loaded.feature_keys == bundle.feature_keys
        assert loaded.meta["feature_ranges"] == {"employees": [0.0, 9.0]}
        np.testing.assert_array_equal(loaded.predict_proba(frame), bundle.predict_proba(frame))
        odd = odd_rows(definitions, frame)
        again = loaded.contributions(loaded.encoder.transform(odd))[1]
        np.testing.assert_array_equal(again, bundle.contributions(bundle.encoder.transform(odd))[1])


def test_a_bundle_saved_before_kinds_still_loads_as_lightgbm(tmp_path: Path, lightgbm_bundle: ModelBundle, data: Data) -> None:
    import json

    frame, _ = data
    folder = tmp_path / "old"
    folder.mkdir()
    lightgbm_bundle.booster.save_model(str(folder / BOOSTER_FILE))
    old = {  # the layout written before bundles had kinds
        "feature_keys": lightgbm_bundle.encoder.feature_keys,
        "categories": lightgbm_bundle.encoder.categories,
        "calibration": {"a": lightgbm_bundle.calib_a, "b": lightgbm_bundle.calib_b},
        "meta": {"trained_at": "2026-11-01"},
    }
    (folder / META_FILE).write_text(json.dumps(old))
    loaded = ModelBundle.load(folder)
    assert isinstance(loaded, ModelBundle) and loaded.calibrated and loaded.meta == {"trained_at": "2026-11-01"}
    np.testing.assert_allclose(loaded.predict_proba(frame), lightgbm_bundle.predict_proba(frame))
    (folder / META_FILE).write_text(json.dumps({**old, "kind": "forest"}))
    with pytest.raises(ValueError, match="unknown bundle kind 'forest'"):
        Bundle.load(folder)


def test_points_bundle_with_no_rules_scores_the_prior(definitions: Definitions, data: Data, tmp_path: Path) -> None:
    frame, _ = data
    empty = Points.model_construct(scale=PointsScale(points_at_even_odds=20, points_per_doubling=10), rules=[])
    bundle = PointsBundle.from_definitions(definitions, empty)
    p = bundle.predict_proba(frame)
    assert np.allclose(p, 1 / (1 + 2.0**2))  # 0 points: two doublings below even odds
    assert np.allclose(Bundle.load(bundle.save(tmp_path / "empty")).predict_proba(frame), p)


def test_logreg_keeps_the_definitions_directions(definitions: Definitions) -> None:
    """Page views declared `up` but planted to hurt: the fit leaves them out rather than let a view lower the score."""
    frame, y = feature_frame(definitions, 3000, seed=11)
    planted = "page_views_90d"
    assert definitions.feature(planted).direction == "up"
    hurt = -1.5 * np.nan_to_num(frame[planted].to_numpy(float))
    rng = np.random.default_rng(12)
    y = (
        rng.random(len(y)) < 1 / (1 + np.exp(-(hurt + 2.0 + 0.8 * np.nan_to_num(frame["demo_requests_90d"].to_numpy(float)))))
    ).astype(int)
    free = LogisticRegressionCheck.unconstrained_sign(definitions, frame, y, planted)
    assert free < 0  # left to itself the regression would say "more page views, lower score"
    bundle = fit_logreg_bundle(definitions, frame, y)
    signs = {f.key: f.direction for f in definitions.features}
    for name, c in zip(bundle.column_names(), bundle.coef, strict=True):
        if name in signs and signs[name] == "up":
            assert c >= 0, name
        if name in signs and signs[name] == "down":
            assert c <= 0, name
    X = bundle.encoder.transform(frame)
    _, contrib = bundle.contributions(X)
    j = bundle.feature_keys.index(planted)
    more = np.nan_to_num(frame[planted].to_numpy(float)) > np.nanmean(frame[planted].to_numpy(float))
    assert (contrib[more, j] >= -1e-12).all()  # a lead with more views than usual is never pushed down by them
    assert_exact(bundle, frame)


class LogisticRegressionCheck:
    @staticmethod
    def unconstrained_sign(defs: Definitions, frame: pd.DataFrame, y: np.ndarray, key: str) -> float:
        from sklearn.linear_model import LogisticRegression

        from samepage.linear import design, fit_specs

        encoder = FeatureEncoder.fit(frame, defs.feature_keys, [f.key for f in defs.features if f.is_categorical])
        X = encoder.transform(frame)
        specs = fit_specs(encoder, X)
        D = design(specs, X)
        names = [n for s in specs for n in s.names(encoder.categories.get(s.key, []))]
        coef = LogisticRegression(C=1.0, max_iter=2000).fit(D, y).coef_[0]
        return float(coef[names.index(key)])


def test_a_booster_of_some_trees_scores_as_those_trees(lightgbm_bundle: ModelBundle, data: Data) -> None:
    from samepage.bundle import model_text_of_trees

    booster = lightgbm_bundle.booster
    X = lightgbm_bundle.encoder.transform(data[0])
    trees = (9, 2, 14)
    part = lgb.Booster(model_str=model_text_of_trees(booster.model_to_string(), trees))
    assert part.num_trees() == len(trees)
    each = sum(booster.predict(X, raw_score=True, start_iteration=t, num_iteration=1) for t in trees)
    assert np.abs(part.predict(X, raw_score=True) - each).max() < 1e-12
    with pytest.raises(ValueError, match="not a LightGBM model text"):
        model_text_of_trees("tree\nversion=v4\n", trees)


def test_rows_changed_in_a_few_columns_score_from_the_trees_that_read_them(
    lightgbm_bundle: ModelBundle, logreg_bundle: LogRegBundle, data: Data, definitions: Definitions
) -> None:
    """What the `to_pass` search rests on: the logit is the calibration's constant plus every tree's share;
    a row's logit less the shares of the trees that read some columns, plus those trees on a row changed
    in these columns alone, is the changed row's logit; and those trees are fewer than the model has."""
    bundle = lightgbm_bundle
    X = bundle.encoder.transform(data[0])
    every = tuple(range(bundle.booster.num_trees()))
    assert np.abs(bundle.calib_b + bundle.part_shares(X, every).sum(axis=1) - bundle.logit(X)).max() < 1e-12
    numeric = [j for j, k in enumerate(bundle.feature_keys) if k not in bundle.encoder.categories]
    used = [j for j in numeric if bundle.parts_reading([j])]
    columns = [min(used, key=lambda j: len(bundle.parts_reading([j])))]  # a count few trees read
    parts = bundle.parts_reading(columns)
    assert 0 < len(parts) < len(every)
    changed = X.copy()
    changed[:, columns[0]] = np.nan_to_num(changed[:, columns[0]]) + np.arange(len(X)) % 4
    shares = bundle.part_shares(X, parts)
    assert np.abs(shares.sum(axis=1) - bundle.parts_logit(X, parts)).max() < 1e-12
    got = bundle.logit(X) - shares.sum(axis=1) + bundle.parts_logit(changed, parts)
    assert np.abs(got - bundle.logit(changed)).max() < 1e-12
    assert np.abs(got - bundle.logit(X)).max() > 0.1  # the change does move the scores
    # Every tree that reads the column must be among them: leave one out and the logits are wrong.
    short = parts[1:]
    wrong = bundle.logit(X) - bundle.part_shares(X, short).sum(axis=1) + bundle.parts_logit(changed, short)
    assert np.abs(wrong - bundle.logit(changed)).max() > 1e-6
    assert bundle.parts_reading(range(len(bundle.feature_keys))) == tuple(t for t in every if bundle.tree_paths.trees[t])
    assert logreg_bundle.parts_reading(columns) is None  # other kinds score changed rows whole

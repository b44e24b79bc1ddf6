"""TreeSHAP tree by tree on decision patterns equals LightGBM's own `pred_contrib` on every row."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pytest

from samepage.bundle import TREE_BY_TREE_ROWS, FeatureEncoder, ModelBundle
from samepage.treepaths import TreePaths

TOLERANCE = 1e-12  # only the order of the sum across trees differs


def make_model(missing: str, seed: int = 0, n: int = 3_000) -> tuple[lgb.Booster, np.ndarray]:
    """Numbers with NaNs and exact zeros, two categorical columns, and a column no tree can split on."""
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.normal(size=n),
            rng.poisson(1.0, n).astype(float),  # many exact zeros
            rng.integers(0, 6, n).astype(float),  # categorical codes
            np.ones(n),  # constant: never split on
            rng.uniform(-5, 5, n).round(1),
            rng.integers(0, 40, n).astype(float),  # a categorical with many codes
        ]
    )
    X[rng.random(n) < 0.1, 0] = np.nan
    X[rng.random(n) < 0.1, 2] = np.nan
    signal = X[:, 1] - np.nan_to_num(X[:, 0]) + (X[:, 2] == 3) + 0.3 * X[:, 4] + (X[:, 5] % 3 == 0)
    y = (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(int)
    params = {
        "objective": "binary",
        "verbosity": -1,
        "num_leaves": 15,
        "min_data_in_leaf": 5,
        "min_data_per_group": 5,
        "cat_smooth": 1,
        "num_threads": 1,
        "zero_as_missing": missing == "zero",
        "use_missing": missing != "none",
    }
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[2, 5]), num_boost_round=40)
    return booster, X


def edge_rows(paths: TreePaths, X: np.ndarray) -> np.ndarray:
    """Rows of data, plus rows with one value exactly on, just under and just over every threshold,
    and NaN, ±0, tiny values, ±inf and (for categories) negative, fractional and unseen codes."""
    rows = [X]
    specials = [np.nan, 0.0, -0.0, 1e-36, -1e-36, 1e-35, 1.0000000180025095e-35, 1e-30, np.inf, -np.inf, -1.0, 2.5, 99.0]
    for feature in range(X.shape[1]):
        values = list(specials)
        thresholds = paths.thresholds.get(feature)
        if thresholds is not None:
            values += [*thresholds, *np.nextafter(thresholds, np.inf), *np.nextafter(thresholds, -np.inf)]
        block = np.repeat(X[:3], len(values), axis=0)
        block[:, feature] = np.tile(values, 3)
        rows.append(block)
    return np.vstack(rows)


@pytest.mark.parametrize("missing", ["nan", "zero", "none"])
def test_tree_by_tree_equals_pred_contrib(missing: str) -> None:
    booster, X = make_model(missing)
    paths = TreePaths.of(booster)
    rows = edge_rows(paths, X)
    direct = np.asarray(booster.predict(rows, pred_contrib=True))
    got = paths.contributions(rows)
    assert got.shape == direct.shape
    np.testing.assert_allclose(got, direct, rtol=0, atol=TOLERANCE)
    assert np.abs(direct).max() > 0.1  # the model pushes: the comparison is not between zeros


def test_bundle_explains_large_batches_tree_by_tree_within_tolerance() -> None:
    booster, X = make_model("nan", seed=1)
    keys = [f"f{i}" for i in range(X.shape[1])]
    bundle = ModelBundle(FeatureEncoder(keys, {}), booster, calib_a=0.8, calib_b=-0.1)
    rows = np.vstack([X, X])[: max(TREE_BY_TREE_ROWS, 4_000)]
    assert len(rows) >= TREE_BY_TREE_ROWS
    base, contrib = bundle.contributions(rows)
    direct = np.asarray(booster.predict(rows, pred_contrib=True))
    np.testing.assert_allclose(contrib, 0.8 * direct[:, :-1], rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(base, 0.8 * direct[:, -1] - 0.1, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(base + contrib.sum(axis=1), bundle.logit(rows), rtol=0, atol=1e-9)


def test_every_tree_is_read_and_unused_features_are_left_out() -> None:
    booster, _ = make_model("nan")
    paths = TreePaths.of(booster)
    assert len(paths.trees) == booster.num_trees()
    used = {s.feature for splits in paths.trees for s in splits}
    assert 3 not in used  # the constant column
    kinds = {s.feature: s.thresholds is None for splits in paths.trees for s in splits}
    assert kinds[2] and kinds[5] and not kinds[0]  # categorical splits are read as sets of codes
    # The trees that split on some features, as the booster's own dump names them.
    dumped = [json.dumps(t["tree_structure"]) for t in booster.dump_model()["tree_info"]]
    for features in ([0], [2, 4], [3], [1, 5, 0]):
        named = tuple(i for i, d in enumerate(dumped) if any(f'"split_feature": {f},' in d for f in features))
        assert paths.trees_using(features) == named, features
    assert paths.trees_using([3]) == () and paths.trees_using([0, 2, 5]) == paths.trees_using([5, 2, 0, 0])


def test_trees_without_splits_give_their_value_to_the_base() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 3))
    y = (rng.random(500) < 0.3).astype(int)
    params = {"objective": "binary", "verbosity": -1, "min_data_in_leaf": 1_000, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=3)  # too little data to split: one leaf each
    paths = TreePaths.of(booster)
    assert all(splits == [] for splits in paths.trees)
    np.testing.assert_allclose(paths.contributions(X), booster.predict(X, pred_contrib=True), rtol=0, atol=TOLERANCE)

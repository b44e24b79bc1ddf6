"""The champion candidate: LightGBM with native categorical handling, Platt-calibrated.

`SEARCH` is the small grid the backtest compares; `refit_lightgbm` fits the registered model
on every labelled row with the tree count and Platt calibration the backtest found
(cross-fitting); `fit_lightgbm` is the one-split fit (trees on one part, calibration on another).

Categories go in as the shared `FeatureEncoder`'s stable integer codes with
`categorical_feature=` indices (pandas `category` columns would break `mlflow models serve`).
The definitions' `direction: up/down` becomes a LightGBM monotone constraint (+1/-1), so e.g.
"a demo request never lowers the score" holds by construction. Platt scaling is a 1-D logistic
regression on the booster's raw margin fitted on the held-out calibration slice: it is affine
in log-odds, so it keeps the ranking and keeps the bundle's contributions exact.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.linear_model import LogisticRegression

from samepage.bundle import FeatureEncoder, ModelBundle
from samepage.definitions import Definitions


class LightGBMParams(BaseModel):
    """Hyper-parameters a data scientist changes; everything else is fixed by the definitions.

    Defaults are shallow, L2-regularised trees chosen on the calibration slice (not the test
    rows) of the demo and X Education data; they were within 0.002 AUC of each other there.
    """

    model_config = ConfigDict(extra="forbid")

    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(7, ge=2)
    max_depth: int = -1
    min_data_in_leaf: int = Field(40, ge=1)
    feature_fraction: float = Field(0.9, gt=0, le=1)
    bagging_fraction: float = Field(0.9, gt=0, le=1)
    bagging_freq: int = Field(1, ge=0)
    lambda_l2: float = Field(10.0, ge=0)
    cat_smooth: float = Field(10.0, ge=0)
    min_data_per_group: int = Field(50, ge=1)
    max_cat_to_onehot: int = Field(8, ge=1)
    num_boost_round: int = Field(1000, ge=1)
    early_stopping_rounds: int = Field(50, ge=0, description="0: no early stopping")
    # One thread: on a 2-core machine shared with a feature build or a server, OpenMP threads
    # wait on each other and training ran 6-8x slower with 2 threads than with 1 (measured).
    num_threads: int = Field(1, ge=0, description="0: LightGBM's default (all cores)")
    seed: int = 42

    def booster_params(self) -> dict[str, Any]:
        skip = {"num_boost_round", "early_stopping_rounds"}
        params = {k: v for k, v in self.model_dump().items() if k not in skip}
        params.update(objective="binary", metric="auc", verbosity=-1, deterministic=True, force_col_wise=True)
        return params


# The backtest's search: regularised settings that hold from ~1k to ~1M leads. Larger leaves
# need more rows per leaf and more L2, so none of them can memorise a small workspace; a
# learning rate of 0.1 with early stopping keeps 100k leads x 4 folds x 3 settings in minutes.
SEARCH: tuple[dict[str, Any], ...] = (
    {"num_leaves": 7, "min_data_in_leaf": 40, "lambda_l2": 10.0, "learning_rate": 0.1},
    {"num_leaves": 15, "min_data_in_leaf": 100, "lambda_l2": 10.0, "learning_rate": 0.1},
    {"num_leaves": 31, "min_data_in_leaf": 200, "lambda_l2": 20.0, "learning_rate": 0.1},
)


def search_params(overrides: dict[str, Any] | None = None, seed: int = 42) -> list[LightGBMParams]:
    """The grid with the caller's hyper-parameters on top (theirs win); duplicates dropped."""
    out: list[LightGBMParams] = []
    for setting in SEARCH:
        params = LightGBMParams(**{"seed": seed, "early_stopping_rounds": 30, **setting, **(overrides or {})})
        if params not in out:
            out.append(params)
    return out


def categorical_keys(defs: Definitions) -> list[str]:
    return [f.key for f in defs.features if f.is_categorical]


def monotone_constraints(defs: Definitions) -> list[int]:
    """+1 for `direction: up`, -1 for `direction: down`, 0 otherwise, in feature-key order."""
    sign = {"up": 1, "down": -1, None: 0}
    return [sign[f.direction] for f in defs.features]


def train_booster(
    defs: Definitions,
    encoder: FeatureEncoder,
    train: pd.DataFrame,
    y_train: np.ndarray,
    params: LightGBMParams,
    valid: pd.DataFrame | None = None,
    y_valid: np.ndarray | None = None,
    num_boost_round: int | None = None,
) -> lgb.Booster:
    """Trees with the definitions' monotone constraints; early stopping on `valid` when given.

    The returned booster keeps only the trees up to the best iteration, so the saved model
    predicts what was validated. `num_boost_round` overrides the params' (a final refit).
    """
    booster_params = params.booster_params()
    booster_params["monotone_constraints"] = monotone_constraints(defs)
    # Every method guarantees monotonicity; "intermediate" over-constrains less than "basic".
    booster_params["monotone_constraints_method"] = "intermediate"
    dtrain = lgb.Dataset(
        encoder.transform(train),
        label=y_train,
        feature_name=defs.feature_keys,
        categorical_feature=encoder.categorical_indices,
        free_raw_data=False,
    )
    rounds = num_boost_round or params.num_boost_round
    stopping = bool(params.early_stopping_rounds) and valid is not None and y_valid is not None
    valid_sets: list[lgb.Dataset] = []
    callbacks: list[Any] = []
    if stopping:
        assert valid is not None
        valid_sets = [lgb.Dataset(encoder.transform(valid), label=y_valid, reference=dtrain)]
        callbacks.append(lgb.early_stopping(params.early_stopping_rounds, verbose=False))
    booster = lgb.train(booster_params, dtrain, num_boost_round=rounds, valid_sets=valid_sets, callbacks=callbacks)
    if stopping and booster.best_iteration > 0:
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    return booster


def fit_lightgbm(
    defs: Definitions,
    train: pd.DataFrame,
    y_train: np.ndarray,
    calibration: pd.DataFrame,
    y_calibration: np.ndarray,
    params: LightGBMParams | None = None,
    meta: dict[str, Any] | None = None,
) -> ModelBundle:
    """Fit trees on `train`, stop early and calibrate on `calibration`; frames hold feature columns."""
    params = params or LightGBMParams()
    encoder = FeatureEncoder.fit(train, defs.feature_keys, categorical_keys(defs))
    booster = train_booster(defs, encoder, train, y_train, params, calibration, y_calibration)
    calib_a, calib_b = platt(np.asarray(booster.predict(encoder.transform(calibration), raw_score=True)), y_calibration)
    info = {
        "params": params.model_dump(),
        "best_iteration": int(booster.num_trees()),
        "calibration": {"a": calib_a, "b": calib_b, "rows": int(len(y_calibration))},
    }
    return ModelBundle(encoder, booster, calib_a, calib_b, {**(meta or {}), **info})


def refit_lightgbm(
    defs: Definitions,
    frame: pd.DataFrame,
    y: np.ndarray,
    params: LightGBMParams,
    trees: int,
    calibration: tuple[float, float],
    meta: dict[str, Any] | None = None,
) -> ModelBundle:
    """The registered model: every labelled row, a tree count and a Platt calibration found by the
    backtest (out-of-fold), so no slice is held back from what the model learns."""
    encoder = FeatureEncoder.fit(frame, defs.feature_keys, categorical_keys(defs))
    booster = train_booster(defs, encoder, frame, y, params, num_boost_round=max(1, trees))
    calib_a, calib_b = calibration
    info = {
        "params": params.model_dump(),
        "best_iteration": int(booster.num_trees()),
        "calibration": {"a": calib_a, "b": calib_b, "rows": int(len(y)), "method": "platt on out-of-fold margins"},
    }
    return ModelBundle(encoder, booster, calib_a, calib_b, {**(meta or {}), **info})


def platt(margin: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit p = sigmoid(a * margin + b) by maximum likelihood (no penalty)."""
    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000)
    model.fit(np.asarray(margin, dtype=float).reshape(-1, 1), np.asarray(y))
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    if a <= 0:
        # A non-positive slope would invert or flatten the ranking the trees learned; that
        # means the calibration slice disagrees with the model, and a score must not hide it.
        raise ValueError(
            f"Platt scaling found slope {a:.4f} <= 0 on {len(y)} calibration rows: "
            "the model does not rank the held-out slice; not calibrating a useless model"
        )
    return a, b

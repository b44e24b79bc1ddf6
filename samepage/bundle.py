"""The scoring bundle: the one artifact training writes and serving reads.

A bundle is the feature encoding (stable integer codes for categories), a LightGBM booster and
the Platt calibration `p = sigmoid(a * raw + b)`. Because the calibration is affine in log-odds,
LightGBM's TreeSHAP contributions scaled by `a` stay exact:
`base_value + sum(contributions) == logit(score)`.
It lives in the core package so that training and serving share it without depending on each other;
so do the registry names: the model is `sql_likelihood`, the version serving follows is `@champion`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from samepage.values import is_missing, sigmoid

MODEL_NAME = "sql_likelihood"
CHAMPION = "champion"
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION}"
BOOSTER_FILE = "booster.txt"
META_FILE = "bundle.json"
SMALL_FRAME = 64  # rows; below this one object conversion of the frame beats per-column access


@dataclass
class FeatureEncoder:
    """Turns a feature frame (categories as strings) into LightGBM's numeric matrix.

    Category codes are indexes into `categories[key]`, fixed at fit time; an unseen or missing
    category becomes NaN, which LightGBM treats as missing.
    """

    feature_keys: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, feature_keys: list[str], categorical: list[str]) -> FeatureEncoder:
        cats = {}
        for key in categorical:
            values = frame[key].dropna().astype(str)
            cats[key] = sorted(values.unique().tolist())
        return cls(feature_keys=list(feature_keys), categories=cats)

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, k in enumerate(self.feature_keys) if k in self.categories]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """LightGBM's matrix for a frame holding `feature_keys` (KeyError names any it lacks)."""
        return self.transform_columns(self.columns(frame))

    def columns(self, frame: pd.DataFrame) -> list[np.ndarray]:
        """The frame's `feature_keys` columns as arrays, in order: a batch's keep their dtypes.

        A few rows go through one object conversion instead: pandas' per-column access costs
        more than the rows' own work (a row's values then are plain Python objects).
        """
        positions = frame.columns.get_indexer(self.feature_keys)
        if (positions < 0).any():
            lacking = [k for k, p in zip(self.feature_keys, positions, strict=True) if p < 0]
            raise KeyError(f"feature frame lacks columns {lacking}")
        if len(frame) < SMALL_FRAME:
            return list(frame.to_numpy(dtype=object)[:, positions].T)
        return [frame[k].to_numpy() for k in self.feature_keys]

    def transform_columns(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """LightGBM's matrix from one array per feature key (as `columns` returns them): THE encoding.

        A category is `str(value)` looked up in the fitted categories (missing or unseen: NaN); a
        number is a float (missing: NaN; text that is not a number: NaN, as `pd.to_numeric` coerces).
        """
        codes = self._codes()
        n = len(columns[0]) if len(columns) else 0
        out = np.empty((n, len(self.feature_keys)), dtype=np.float64)
        nan = np.nan
        for j, key in enumerate(self.feature_keys):
            col = columns[j]
            lookup = codes.get(key)
            if lookup is not None:
                # text first: it is nearly every value, and needs neither the missing test nor str()
                out[:, j] = [
                    lookup.get(v, nan) if type(v) is str else nan if is_missing(v) else lookup.get(str(v), nan)
                    for v in col.tolist()
                ]
            elif col.dtype.kind in "fiub":  # already numbers: NaN stays missing
                out[:, j] = col
            else:
                try:  # a float (NaN too) as it is: nearly every value; None, int and bool by `_plain_number`
                    out[:, j] = [v if type(v) is float else _plain_number(v) for v in col.tolist()]
                except TypeError:  # text, pandas' NA, numpy scalars: pandas' own coercion, value by value
                    series = pd.Series(col, dtype=object)
                    out[:, j] = pd.to_numeric(series.where(series.notna(), None), errors="coerce")
        return out

    def _codes(self) -> dict[str, dict[str, int]]:
        """category -> code per categorical key, built once per encoder (categories are fixed at fit time)."""
        cached = self.__dict__.get("_code_lookup")
        if cached is None:
            cached = {k: {c: i for i, c in enumerate(cats)} for k, cats in self.categories.items()}
            self.__dict__["_code_lookup"] = cached
        return cached


def _plain_number(value: Any) -> float:
    """None, int or bool as a float; TypeError for anything pandas would have to coerce (text, NA, numpy)."""
    if value is None:
        return math.nan
    if type(value) is int or type(value) is bool:
        return float(value)
    raise TypeError(f"not a plain number: {type(value).__name__}")


@dataclass
class ModelBundle:
    encoder: FeatureEncoder
    booster: lgb.Booster
    calib_a: float = 1.0
    calib_b: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_keys(self) -> list[str]:
        return self.encoder.feature_keys

    def logit(self, X: np.ndarray) -> np.ndarray:
        return self.calib_a * np.asarray(self.booster.predict(X, raw_score=True)) + self.calib_b

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return sigmoid(self.logit(self.encoder.transform(frame)))

    def contributions(self, X: np.ndarray, **predict_params: Any) -> tuple[np.ndarray, np.ndarray]:
        """(base_value per row, contributions (n, k)) in calibrated log-odds; exact by construction.

        `predict_params` go to LightGBM's predict (serving passes `num_threads=1` for a few rows).
        """
        raw = np.asarray(self.booster.predict(X, pred_contrib=True, **predict_params))
        base = self.calib_a * raw[:, -1] + self.calib_b
        return base, self.calib_a * raw[:, :-1]

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / BOOSTER_FILE))
        meta = {
            "feature_keys": self.encoder.feature_keys,
            "categories": self.encoder.categories,
            "calibration": {"a": self.calib_a, "b": self.calib_b},
            "meta": self.meta,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ModelBundle:
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        booster = lgb.Booster(model_file=str(directory / BOOSTER_FILE))
        encoder = FeatureEncoder(meta["feature_keys"], meta["categories"])
        cal = meta["calibration"]
        return cls(encoder, booster, float(cal["a"]), float(cal["b"]), meta.get("meta", {}))


def _pyfunc_base() -> type:
    # mlflow is heavy to import; only pay for it where a pyfunc is built or loaded.
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel


class BundlePyfunc(_pyfunc_base()):  # type: ignore[misc]
    """MLflow pyfunc over a bundle folder (artifact key `bundle`); `mlflow models serve` serves it.

    Input: a frame with the raw feature columns (categories as strings); output: `score`.
    Serving loads it with `mlflow.pyfunc.load_model(...).unwrap_python_model().bundle`.
    """

    bundle: ModelBundle | None = None

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        assert self.bundle is not None, "load_context was not called"
        return pd.DataFrame({"score": self.bundle.predict_proba(model_input)})

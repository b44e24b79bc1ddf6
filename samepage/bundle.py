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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

MODEL_NAME = "sql_likelihood"
CHAMPION = "champion"
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION}"
BOOSTER_FILE = "booster.txt"
META_FILE = "bundle.json"


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
        missing = [k for k in self.feature_keys if k not in frame.columns]
        if missing:
            raise KeyError(f"feature frame lacks columns {missing}")
        out = np.empty((len(frame), len(self.feature_keys)), dtype=np.float64)
        for j, key in enumerate(self.feature_keys):
            col = frame[key]
            if key in self.categories:
                codes = pd.Categorical(col.astype("string"), categories=self.categories[key]).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = pd.to_numeric(col.astype("object").where(col.notna(), None), errors="coerce")
        return out


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
        return self.calib_a * self.booster.predict(X, raw_score=True) + self.calib_b

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return _sigmoid(self.logit(self.encoder.transform(frame)))

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


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


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

"""The scoring bundle: the one artifact training writes and serving reads.

A bundle is the feature encoding (stable integer codes for categories) and a model of one kind,
each explaining itself exactly in calibrated log-odds (`base_value + sum(contributions) ==
logit(score)`): `lightgbm` (TreeSHAP scaled by the affine Platt calibration), `points` (the
team's rules: each feature's points times the scale) and `logreg` (`samepage.linear`:
coefficient times (value - training mean)). Serving, batch and the explanation only use `Bundle`.
It lives in the core package so that training and serving share it without depending on each other;
so do the registry names: the model is `sql_likelihood`, the version serving follows is `@champion`.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from samepage.definitions import Definitions, Points
from samepage.points import points_by_feature, rule_categories, scale_log_odds, team_points
from samepage.treepaths import TreePaths
from samepage.values import is_missing, sigmoid

MODEL_NAME = "sql_likelihood"
CHAMPION = "champion"
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION}"
BOOSTER_FILE = "booster.txt"
META_FILE = "bundle.json"
SMALL_FRAME = 64  # rows; below this one object conversion of the frame beats per-column access
# Rows from which TreeSHAP runs tree by tree on decision patterns (samepage.treepaths), on one thread: it
# costs about as much for 300 rows as for 2,000, while pred_contrib grows with the rows. bench/treeshap.py
# here (2 cores, best of three): tree by tree / pred_contrib on every core 1.34 and 1.17 at 500 rows,
# 0.72 and 0.89 at 700, 0.54 and 0.67 at 1,000 (32 and 274 trees).
TREE_BY_TREE_ROWS = 700


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


def model_text_of_trees(text: str, trees: Sequence[int]) -> str:
    """LightGBM's model text (`model_to_string`) with only these trees, renumbered in this order. The
    header's `tree_sizes` goes (it only speeds up loading); the rest is kept as it is."""
    head, marker, rest = text.partition("\nTree=0\n")
    body, end, tail = rest.partition("\nend of trees\n")
    if not marker or not end:
        raise ValueError("not a LightGBM model text: no 'Tree=0' or 'end of trees'")
    blocks = [b for b in ("Tree=0\n" + body).split("\n\n\n") if b.strip()]
    head = "\n".join(line for line in head.split("\n") if not line.startswith("tree_sizes="))
    kept = [f"Tree={n}\n" + blocks[t].split("\n", 1)[1] for n, t in enumerate(trees)]
    return head + "\n" + "\n\n\n".join(kept) + "\n\n\nend of trees\n" + tail


def _plain_number(value: Any) -> float:
    """None, int or bool as a float; TypeError for anything pandas would have to coerce (text, NA, numpy)."""
    if value is None:
        return math.nan
    if type(value) is int or type(value) is bool:
        return float(value)
    raise TypeError(f"not a plain number: {type(value).__name__}")


class Bundle(ABC):
    """What serving, batch scoring and the explanation use, whatever the model kind.

    `contributions(X)` gives (base per row, (n, k) contributions) in calibrated log-odds with
    `base + contributions.sum(axis=1) == logit(X)`; `predict_proba` is `sigmoid(logit)`.
    `save` writes a folder whose `bundle.json` names the kind; `Bundle.load` reads any kind back.
    """

    kind: ClassVar[str]
    encoder: FeatureEncoder
    meta: dict[str, Any]

    @property
    def feature_keys(self) -> list[str]:
        return self.encoder.feature_keys

    @property
    @abstractmethod
    def calibrated(self) -> bool:
        """Whether the score was fitted to outcomes (False: a convention, e.g. the points scale)."""

    @abstractmethod
    def contributions(self, X: np.ndarray, **predict_params: Any) -> tuple[np.ndarray, np.ndarray]:
        """(base per row, contributions (n, k)) in calibrated log-odds; exact by construction."""

    def logit(self, X: np.ndarray, **predict_params: Any) -> np.ndarray:
        """Calibrated log-odds per row; `predict_params` as for `contributions` (LightGBM's `num_threads`)."""
        base, contrib = self.contributions(X, **predict_params)
        return np.asarray(base + contrib.sum(axis=1))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return sigmoid(self.logit(self.encoder.transform(frame)))

    def never_falls_with(self, columns: Sequence[int]) -> bool:
        """Whether `logit` is certain never to fall when any of these encoded columns rises (from one
        number to a larger one, the rest alike). False unless the model kind can prove it."""
        return False

    def parts_reading(self, columns: Sequence[int]) -> tuple[int, ...] | None:
        """The parts of the model that read any of these encoded columns (for LightGBM: its trees), when
        the model is a sum of parts (None: it is not, or the kind cannot tell). A row's logit is a
        constant plus every part's share of it (`part_shares`), so rows that differ in these columns
        alone differ in `logit` by as much as these parts' shares differ."""
        return None

    def part_shares(self, X: np.ndarray, parts: Sequence[int], **predict_params: Any) -> np.ndarray:
        """(n, len(parts)): each of these parts' share of each row's logit."""
        raise NotImplementedError(f"a {self.kind} model is not scored by parts")

    def parts_logit(self, X: np.ndarray, parts: Sequence[int], **predict_params: Any) -> np.ndarray:
        """These parts' shares summed, per row of X."""
        raise NotImplementedError(f"a {self.kind} model is not scored by parts")

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """Everything but the encoder and meta, as plain JSON (save adds those and the kind)."""

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        data = {
            "kind": self.kind,
            "feature_keys": self.encoder.feature_keys,
            "categories": self.encoder.categories,
            "calibrated": self.calibrated,
            **self.to_json(),
            "meta": self.meta,
        }
        (directory / META_FILE).write_text(json.dumps(data, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Bundle:
        """Any saved bundle, by the kind its `bundle.json` names (bundles from before kinds are LightGBM)."""
        directory = Path(directory)
        data = json.loads((directory / META_FILE).read_text())
        kind = data.get("kind", ModelBundle.kind)
        encoder = FeatureEncoder(data["feature_keys"], data["categories"])
        if kind == ModelBundle.kind:
            return ModelBundle.from_json(data, encoder, directory)
        if kind == PointsBundle.kind:
            return PointsBundle.from_json(data, encoder, directory)
        if kind == "logreg":
            from samepage.linear import LogRegBundle  # it builds on this module, so it is imported here

            return LogRegBundle.from_json(data, encoder, directory)
        raise ValueError(f"{directory / META_FILE}: unknown bundle kind {kind!r} (lightgbm, logreg or points)")


@dataclass
class ModelBundle(Bundle):
    """LightGBM with Platt calibration `p = sigmoid(a * raw + b)`: TreeSHAP scaled by `a` stays exact."""

    kind: ClassVar[str] = "lightgbm"
    encoder: FeatureEncoder
    booster: lgb.Booster
    calib_a: float = 1.0
    calib_b: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    is_calibrated: bool = True

    @property
    def calibrated(self) -> bool:
        return self.is_calibrated

    def logit(self, X: np.ndarray, **predict_params: Any) -> np.ndarray:
        return self.calib_a * np.asarray(self.booster.predict(X, raw_score=True, **predict_params)) + self.calib_b

    def contributions(self, X: np.ndarray, **predict_params: Any) -> tuple[np.ndarray, np.ndarray]:
        """TreeSHAP (`pred_contrib`) times `a`; `predict_params` go to LightGBM (serving passes `num_threads=1`).

        A large batch runs it tree by tree on one row per decision pattern (`samepage.treepaths`):
        LightGBM's own numbers, summed across trees in another order (within 1e-12).
        """
        if len(X) >= TREE_BY_TREE_ROWS:
            raw = self.tree_paths.contributions(X)
        else:
            raw = np.asarray(self.booster.predict(X, pred_contrib=True, **predict_params))
        base = self.calib_a * raw[:, -1] + self.calib_b
        return base, self.calib_a * raw[:, :-1]

    def parts_reading(self, columns: Sequence[int]) -> tuple[int, ...]:
        """The trees with a split on any of these columns: the others put rows that differ in them alone
        in the same leaves. (The `to_pass` search's candidates differ from their lead in a few counts,
        which most trees of our champions never read.)"""
        return self.tree_paths.trees_using(columns)

    def part_shares(self, X: np.ndarray, parts: Sequence[int], **predict_params: Any) -> np.ndarray:
        """Each tree's leaf value for each row (LightGBM's `pred_leaf` on a booster of these trees), times `calib_a`."""
        trees = tuple(parts)
        if not trees:
            return np.zeros((len(X), 0))
        leaves = np.asarray(self._trees(trees).predict(X, pred_leaf=True, **predict_params), dtype=np.int64).reshape(len(X), -1)
        return self.calib_a * self._leaf_values[np.asarray(trees)[None, :], leaves]

    def parts_logit(self, X: np.ndarray, parts: Sequence[int], **predict_params: Any) -> np.ndarray:
        """`calib_a` times the raw score of these trees alone (a booster of them, made once per set)."""
        trees = tuple(parts)
        if not trees:
            return np.zeros(len(X))
        return self.calib_a * np.asarray(self._trees(trees).predict(X, raw_score=True, **predict_params))

    def _trees(self, trees: tuple[int, ...]) -> lgb.Booster:
        cache: dict[tuple[int, ...], lgb.Booster] = self.__dict__.setdefault("_tree_subsets", {})
        booster = cache.get(trees)
        if booster is None:
            booster = cache[trees] = lgb.Booster(model_str=model_text_of_trees(self._model_text, trees))
        return booster

    @cached_property
    def _model_text(self) -> str:
        return str(self.booster.model_to_string())

    @cached_property
    def _leaf_values(self) -> np.ndarray:
        """(trees, most leaves): each leaf's value (LightGBM's `get_leaf_output`), NaN past a tree's leaves."""
        counts = [int(n) for n in re.findall(r"^num_leaves=(\d+)$", self._model_text, flags=re.MULTILINE)]
        table = np.full((len(counts), max(counts, default=1)), np.nan)
        for t, n in enumerate(counts):
            table[t, :n] = [self.booster.get_leaf_output(t, leaf) for leaf in range(n)]
        return table

    def never_falls_with(self, columns: Sequence[int]) -> bool:
        """Trained with a +1 monotone constraint on each of these columns (LightGBM keeps every tree's
        splits monotone in them; linear leaves would not be) and a positive calibration slope."""
        linear = str(self.booster.params.get("linear_tree", False)).lower() in ("true", "1")
        return not linear and self.calib_a > 0 and all(self.monotone_constraints[j] == 1 for j in columns)

    @cached_property
    def monotone_constraints(self) -> tuple[int, ...]:
        """Per feature: +1, -1 or 0, as the booster was trained (read back from a saved model too; all 0 without)."""
        given = self.booster.params.get("monotone_constraints") or []
        if isinstance(given, str):
            given = [c for c in given.split(",") if c.strip()]
        n = self.booster.num_feature()
        return tuple(int(c) for c in given) if len(given) == n else (0,) * n

    @cached_property
    def tree_paths(self) -> TreePaths:
        """Every tree's splits (read once from the booster)."""
        return TreePaths.of(self.booster)

    def to_json(self) -> dict[str, Any]:
        return {"calibration": {"a": self.calib_a, "b": self.calib_b}}

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / BOOSTER_FILE))
        return super().save(directory)

    @classmethod
    def from_json(cls, data: dict[str, Any], encoder: FeatureEncoder, directory: Path) -> ModelBundle:
        booster = lgb.Booster(model_file=str(directory / BOOSTER_FILE))
        cal = data["calibration"]
        return cls(encoder, booster, float(cal["a"]), float(cal["b"]), data.get("meta", {}), bool(data.get("calibrated", True)))


@dataclass
class PointsBundle(Bundle):
    """The team's points rules as a model: `logit = a * total points + b`, each rule's points its push.

    A feature's contribution is `a` times the points its rules give; the base is `b`. Without
    outcomes `a, b` come from the points scale (`calibrated` False); `fit` fits them to outcomes
    (Platt scaling on the total, `calibrated` True).
    """

    kind: ClassVar[str] = "points"
    encoder: FeatureEncoder
    points: Points
    a: float
    b: float
    is_calibrated: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def calibrated(self) -> bool:
        return self.is_calibrated

    @classmethod
    def from_definitions(cls, defs: Definitions, points: Points | None = None) -> PointsBundle:
        """The definitions' rules (or `points`) read through the points scale: no outcomes needed."""
        points = points or team_points(defs)
        categorical = [f.key for f in defs.features if f.is_categorical]
        encoder = FeatureEncoder(defs.feature_keys, rule_categories(points, categorical))
        a, b = scale_log_odds(points.scale)
        return cls(encoder, points, a, b, False, {"definitions_version": defs.version_string, "derived": defs.points is None})

    @classmethod
    def fit(cls, defs: Definitions, frame: pd.DataFrame, y: np.ndarray, points: Points | None = None) -> PointsBundle:
        """The same rules with `a, b` fitted to outcomes `y` (Platt); ValueError if they do not rank them."""
        bundle = cls.from_definitions(defs, points)
        total = bundle.total_points(frame)
        y = np.asarray(y).astype(int)
        if len(np.unique(y)) < 2:
            raise ValueError("fitting the points scale needs both outcomes among the rows")
        if np.ptp(total) == 0:
            raise ValueError("the points rules give every row the same points: nothing to fit")
        model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000).fit(total.reshape(-1, 1), y)
        a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
        if a <= 0:  # a flat or inverted scale would make "+15 points" lower the score
            raise ValueError(f"the points rules do not rank these {len(y):,} outcomes (fitted slope {a:.4f} <= 0)")
        bundle.a, bundle.b, bundle.is_calibrated = a, b, True
        bundle.meta["calibration_rows"] = int(len(y))
        return bundle

    def points_by_feature(self, X: np.ndarray) -> np.ndarray:
        return points_by_feature(self.points, self.feature_keys, self.encoder.categories, X)

    def total_points(self, frame: pd.DataFrame) -> np.ndarray:
        """Total points per row of a feature frame."""
        return self.points_by_feature(self.encoder.transform(frame)).sum(axis=1)

    def contributions(self, X: np.ndarray, **predict_params: Any) -> tuple[np.ndarray, np.ndarray]:
        return np.full(X.shape[0], self.b), self.a * self.points_by_feature(X)

    def to_json(self) -> dict[str, Any]:
        return {"points": self.points.model_dump(mode="json", by_alias=True), "calibration": {"a": self.a, "b": self.b}}

    @classmethod
    def from_json(cls, data: dict[str, Any], encoder: FeatureEncoder, directory: Path) -> PointsBundle:
        points = Points.model_validate(data["points"]) if data["points"]["rules"] else Points.model_construct(**data["points"])
        cal = data["calibration"]
        return cls(encoder, points, float(cal["a"]), float(cal["b"]), bool(data.get("calibrated", False)), data.get("meta", {}))


def _pyfunc_base() -> type:
    # mlflow is heavy to import; only pay for it where a pyfunc is built or loaded.
    import mlflow.pyfunc

    return mlflow.pyfunc.PythonModel


class BundlePyfunc(_pyfunc_base()):  # type: ignore[misc]
    """MLflow pyfunc over a bundle folder (artifact key `bundle`); `mlflow models serve` serves it.

    Input: a frame with the raw feature columns (categories as strings); output: `score`.
    Serving loads it with `mlflow.pyfunc.load_model(...).unwrap_python_model().bundle`.
    """

    bundle: Bundle | None = None

    def load_context(self, context: Any) -> None:
        self.bundle = Bundle.load(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        assert self.bundle is not None, "load_context was not called"
        return pd.DataFrame({"score": self.bundle.predict_proba(model_input)})

"""Logistic regression as a bundle that explains itself exactly, stored as plain arrays.

The design matrix is built from the `FeatureEncoder`'s matrix in the open, so the saved bundle is
numbers a person can read: a number is imputed with the training median (plus a missing flag when
training saw it missing), signed-log transformed and standardised; a category is one-hot over its
frequent levels, with rare levels pooled in `other` and a `missing` column (an unseen category is
missing, as the encoder makes it). A feature's contribution is the sum over its columns of
`coef * (value - training mean)`, so the base is `intercept + sum(coef * mean)` and
`base + sum(contributions) == logit` exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from samepage.bundle import Bundle, FeatureEncoder
from samepage.definitions import Definitions

MIN_FREQUENCY = 20  # a category level seen fewer times than this is pooled with the other rare ones


@dataclass
class ColumnSpec:
    """How one feature becomes design columns (numbers: median/center/scale; categories: levels)."""

    key: str
    categorical: bool
    median: float = 0.0
    center: float = 0.0
    scale: float = 1.0
    flag: bool = False  # a missing-value column
    levels: list[int] = field(default_factory=list)  # category codes with their own column
    other: bool = False  # a column for rare levels

    def width(self) -> int:
        if self.categorical:
            return len(self.levels) + int(self.other) + int(self.flag)
        return 1 + int(self.flag)

    def columns(self, x: np.ndarray) -> list[np.ndarray]:
        missing = np.isnan(x)
        if self.categorical:
            cols = [(x == code).astype(float) for code in self.levels]
            if self.other:
                cols.append((~missing & ~np.isin(x, self.levels)).astype(float))
        else:
            filled = np.where(missing, self.median, x)
            cols = [(signed_log(filled) - self.center) / self.scale]
        if self.flag:
            cols.append(missing.astype(float))
        return cols

    def share(self, x: np.ndarray, coef: np.ndarray, means: np.ndarray) -> np.ndarray:
        """This feature's contribution, `sum(coef * (column - mean))` over its design columns (`coef`
        and `means` are theirs); a category's by a table look-up per code, one entry per level."""
        if not self.categorical:
            return self._summed(x, coef, means)
        missing = np.isnan(x)
        known = x[~missing]
        if (known < 0).any() or (known != np.trunc(known)).any():  # not the encoder's codes: column by column
            return self._summed(x, coef, means)
        top = max(self.levels, default=-1) + 1  # every code from here on is an `other` code
        probes = np.concatenate([[np.nan], np.arange(top + 1, dtype=float)])  # missing, then each code up to `top`
        index = np.where(missing, 0, np.minimum(np.nan_to_num(x), top).astype(np.int64) + 1)
        return np.asarray(self._summed(probes, coef, means)[index])

    def _summed(self, x: np.ndarray, coef: np.ndarray, means: np.ndarray) -> np.ndarray:
        out = np.zeros(len(x))
        for column, mean, k in zip(self.columns(x), means, coef, strict=True):
            out += (column - mean) * k
        return out

    def names(self, categories: list[str]) -> list[str]:
        if self.categorical:
            out = [f"{self.key}={categories[c]}" for c in self.levels] + ([f"{self.key}=(other)"] if self.other else [])
        else:
            out = [self.key]
        return out + ([f"{self.key}=(missing)"] if self.flag else [])


def signed_log(x: np.ndarray) -> np.ndarray:
    """Keeps sign and order, tames long tails (revenue, visit counts)."""
    return np.asarray(np.sign(x) * np.log1p(np.abs(x)))


def fit_specs(encoder: FeatureEncoder, X: np.ndarray, min_frequency: int = MIN_FREQUENCY) -> list[ColumnSpec]:
    """The design of each feature, from the training matrix."""
    specs = []
    for j, key in enumerate(encoder.feature_keys):
        x = X[:, j]
        missing = np.isnan(x)
        if key in encoder.categories:
            codes, counts = np.unique(x[~missing], return_counts=True)
            levels = [int(c) for c, n in zip(codes, counts, strict=True) if n >= min_frequency]
            specs.append(ColumnSpec(key, True, levels=levels, other=len(levels) < len(codes), flag=bool(missing.any())))
            continue
        present = x[~missing]
        median = float(np.median(present)) if len(present) else 0.0
        z = signed_log(np.where(missing, median, x))
        scale = float(z.std())
        specs.append(ColumnSpec(key, False, median, float(z.mean()), scale if scale > 0 else 1.0, bool(missing.any())))
    return specs


def design(specs: list[ColumnSpec], X: np.ndarray) -> np.ndarray:
    cols = [c for j, spec in enumerate(specs) for c in spec.columns(X[:, j])]
    return np.column_stack(cols) if cols else np.empty((X.shape[0], 0))


@dataclass
class LogRegBundle(Bundle):
    """A logistic regression over the transparent design; calibrated by its own log-loss fit."""

    kind: ClassVar[str] = "logreg"
    encoder: FeatureEncoder
    specs: list[ColumnSpec]
    coef: np.ndarray  # one per design column
    intercept: float
    means: np.ndarray  # training mean of each design column: the reference "typical lead"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def calibrated(self) -> bool:
        return True

    def logit(self, X: np.ndarray, **predict_params: Any) -> np.ndarray:
        base, contrib = self.contributions(X)
        return np.asarray(base + contrib.sum(axis=1))

    def contributions(self, X: np.ndarray, **predict_params: Any) -> tuple[np.ndarray, np.ndarray]:
        # Feature by feature, without the design matrix: the `to_pass` search asks for the logit
        # of ~100,000 candidate rows at a time, and their design matrix (a column per category
        # level) cost more than everything else in `score --all` with this kind of champion.
        contrib = np.empty((len(self.specs), X.shape[0])).T  # each feature's column contiguous
        offsets = self._offsets
        for j, spec in enumerate(self.specs):
            start, end = offsets[j], offsets[j + 1]
            contrib[:, j] = spec.share(X[:, j], self.coef[start:end], self.means[start:end])
        base = self.intercept + float(self.coef @ self.means)
        return np.full(X.shape[0], base), contrib

    def never_falls_with(self, columns: Sequence[int]) -> bool:
        """Each of these features is a number whose value column has a coefficient >= 0 (a positive scale):
        its share then rises with it (signed log is increasing), and its missing flag stays as it is
        from one number to a larger one. Fitting keeps the definitions' `direction: up` features so."""
        start = self._offsets
        return all(not self.specs[j].categorical and self.specs[j].scale > 0 and self.coef[start[j]] >= 0 for j in columns)

    @cached_property
    def _offsets(self) -> list[int]:
        """Where each feature's design columns start in `coef` and `means` (and, last, their number)."""
        return np.cumsum([0] + [s.width() for s in self.specs]).tolist()

    def column_names(self) -> list[str]:
        return [n for s in self.specs for n in s.names(self.encoder.categories.get(s.key, []))]

    def to_json(self) -> dict[str, Any]:
        return {
            "design": [vars(s) for s in self.specs],
            "columns": self.column_names(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "means": self.means.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], encoder: FeatureEncoder, directory: Path) -> LogRegBundle:
        specs = [ColumnSpec(**s) for s in data["design"]]
        coef, means = np.asarray(data["coef"], dtype=float), np.asarray(data["means"], dtype=float)
        return cls(encoder, specs, coef, float(data["intercept"]), means, data.get("meta", {}))


def fit_logreg_bundle(
    defs: Definitions,
    frame: pd.DataFrame,
    y: np.ndarray,
    C: float = 1.0,
    min_frequency: int = MIN_FREQUENCY,
    encoder: FeatureEncoder | None = None,
) -> LogRegBundle:
    """Fit on a feature frame (the definitions' feature keys) and outcomes `y` (0/1)."""
    if encoder is None:
        encoder = FeatureEncoder.fit(frame, defs.feature_keys, [f.key for f in defs.features if f.is_categorical])
    X = encoder.transform(frame)
    specs = fit_specs(encoder, X, min_frequency)
    D = design(specs, X)
    coef, intercept = fit_with_directions(D, np.asarray(y).astype(int), direction_signs(defs, specs), C)
    meta = {"C": C, "min_frequency": min_frequency, "rows": int(len(D)), "definitions_version": defs.version_string}
    return LogRegBundle(encoder, specs, coef, intercept, D.mean(axis=0), meta)


def direction_signs(defs: Definitions, specs: list[ColumnSpec]) -> np.ndarray:
    """Per design column: +1 / -1 where the definitions say a feature can only raise / lower the
    score (`direction`), else 0. A bound number's missing flag takes the opposite sign: an unknown
    count may not score above a known one, so a known value is never pushed against its direction
    by the flag's reference."""
    wanted = {f.key: {"up": 1, "down": -1}.get(f.direction or "", 0) for f in defs.features}
    signs: list[int] = []
    for spec in specs:
        if spec.categorical:
            signs += [0] * spec.width()
            continue
        d = wanted.get(spec.key, 0)
        signs += [d] + ([-d] if spec.flag else [])
    return np.asarray(signs, dtype=int)


def fit_with_directions(D: np.ndarray, y: np.ndarray, signs: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    """A logistic regression whose bound columns keep their declared sign, as LightGBM's monotone
    constraints do: a column fitted against its direction is left out and the rest refitted,
    until none is (so "a demo request never lowers the score" holds for this kind too)."""
    active = np.ones(D.shape[1], dtype=bool)
    for _ in range(D.shape[1] + 1):
        model = LogisticRegression(C=C, max_iter=2000).fit(D[:, active], y)
        coef = np.zeros(D.shape[1])
        coef[active] = model.coef_[0]
        wrong = (signs * coef) < 0
        if not wrong.any():
            return coef, float(model.intercept_[0])
        active &= ~wrong
    raise AssertionError("unreachable: each round leaves out at least one column")

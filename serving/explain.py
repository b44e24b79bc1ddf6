"""THE explanation: exact per-feature contributions in the shared vocabulary.

LightGBM's own TreeSHAP (`pred_contrib`), scaled by the bundle's Platt calibration, gives one
contribution per feature in calibrated log-odds with `base_value + sum(contributions) == logit(score)`.
The score itself is computed from the same numbers, so the invariant holds by construction.
The API, batch scoring and the lead page all call `explain`; nothing else words a reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from samepage.answers import Vocabulary, stored_explanation, vocabulary
from samepage.bundle import Bundle, FeatureEncoder
from samepage.definitions import Definitions
from samepage.values import sigmoid

REASONS_PER_SIDE = 3
MIN_REASON = 0.01  # log-odds; smaller pushes are noise, not a reason both teams should read
SMALL_BATCH = 64  # below this, one LightGBM thread beats waking a pool (measured: 0.7 ms vs 5.8 ms a row)


@dataclass(slots=True)
class Explanation:
    """One lead's explanation as arrays in the model's feature order (the vocabulary's); the contract's
    `contributions` dicts are built only when asked for (`score --all` stores and writes the arrays)."""

    score: float
    base_value: float
    vocabulary: Vocabulary  # the feature keys and labels, shared by every lead of a model
    row: list[float]  # contributions, in the vocabulary's order
    order: list[int]  # feature positions, largest |contribution| first (the contract's order)
    json_values: Sequence[Any]  # the JSON value each feature's contribution shows, in the vocabulary's order
    reasons_up: list[str]
    reasons_down: list[str]

    @property
    def values(self) -> dict[str, Any]:
        """feature -> the JSON value its contribution shows."""
        return dict(zip(self.vocabulary.keys, self.json_values, strict=True))

    @property
    def contributions(self) -> list[dict[str, Any]]:
        """The contract's dicts (feature, label, value, contribution), every model feature, largest |contribution| first."""
        keys, labels, values, row = self.vocabulary.keys, self.vocabulary.labels, self.json_values, self.row
        return [{"feature": keys[j], "label": labels[j], "value": values[j], "contribution": row[j]} for j in self.order]

    def as_dict(self) -> dict[str, Any]:
        """The contract's `explanation` object."""
        return {
            "base_value": self.base_value,
            "contributions": self.contributions,
            "reasons_up": self.reasons_up,
            "reasons_down": self.reasons_down,
        }

    def stored(self) -> dict[str, Any]:
        """The record store's `explanation` object (`samepage.answers`): `as_dict` once expanded."""
        return stored_explanation(
            self.base_value, self.vocabulary, self.order, list(self.json_values), self.row, self.reasons_up, self.reasons_down
        )

    def by_contribution(self) -> dict[str, float]:
        """feature -> contribution, largest |contribution| first (the output file's `contributions` column)."""
        keys, row = self.vocabulary.keys, self.row
        return {keys[j]: row[j] for j in self.order}

    @classmethod
    def from_stored(cls, score: float, stored: dict[str, Any], vocab: Vocabulary) -> Explanation:
        """The explanation of a stored answer (`stored`: its `explanation` object, naming `vocab`)."""
        if stored["vocabulary"] != vocab.id:
            raise ValueError(f"explanation: vocabulary {stored['vocabulary']!r} is not {vocab.id!r}")
        return cls(
            score,
            stored["base_value"],
            vocab,
            stored["contributions"],
            stored["order"],
            stored["values"],
            stored["reasons_up"],
            stored["reasons_down"],
        )


def explain(bundle: Bundle, defs: Definitions, frame: pd.DataFrame) -> list[Explanation]:
    """One explanation per row of `frame` (holding the bundle's feature keys), in row order."""
    if len(frame) == 0:
        return []
    columns = bundle.encoder.columns(frame)  # the encoder's arrays serve the answer's values too
    return explain_columns(bundle, defs, columns, bundle.encoder.transform_columns(columns))


def explain_columns(
    bundle: Bundle, defs: Definitions, columns: Sequence[np.ndarray], X: np.ndarray, threads: int | None = None
) -> list[Explanation]:
    """`explain` on one array per feature key (in the bundle's order) and their encoded matrix `X`:
    the scorer encodes once and shares `X` with the `to_pass` search. `threads`: LightGBM's for a
    batch (None: every core)."""
    keys = bundle.feature_keys
    if len(X) == 0:
        return []
    base, contrib = bundle.contributions(X, **lightgbm_threads(len(X), SMALL_BATCH, threads))
    n = len(X)
    scores = sigmoid(base + contrib.sum(axis=1)).tolist()
    order_array = np.argsort(-np.abs(contrib), axis=1, kind="stable")
    order = order_array.tolist()
    vocab = vocabulary_of(bundle, defs)
    labels = vocab.labels
    formats = [formatter(defs, k) for k in keys]
    json_columns = [_json_column(col) for col in columns]  # each feature's JSON values, by lead
    rows = contrib.tolist()
    if n >= SMALL_BATCH:
        reasons = _reasons_of_batch(contrib, order_array, json_columns, labels, formats)
    else:  # a few leads: plain Python costs less than numpy's set-up
        reasons = _reasons_of_each(rows, order, json_columns, labels, formats)
    base_list = base.tolist()
    up, down = reasons
    return [
        Explanation(scores[i], base_list[i], vocab, row, order[i], values, up[i], down[i])
        for i, (row, values) in enumerate(zip(rows, zip(*json_columns, strict=True), strict=True))
    ]


def vocabulary_of(bundle: Bundle, defs: Definitions) -> Vocabulary:
    """The bundle's feature keys with their labels in the definitions: what every explanation of it names."""
    keys = bundle.feature_keys
    return vocabulary(tuple(keys), tuple(_label(defs, k) for k in keys))


Reasons = tuple[list[list[str]], list[list[str]]]  # per lead: the reasons up, the reasons down


def _reasons_of_batch(
    contrib: np.ndarray, order: np.ndarray, json_columns: list[list[Any]], labels: Sequence[str], formats: list[Any]
) -> Reasons:
    """The first REASONS_PER_SIDE features (by |contribution|) pushing each way by at least MIN_REASON,
    picked for every lead at once; each reason worded once per side, feature and value."""
    n = len(contrib)
    pushes = np.take_along_axis(contrib, order, axis=1)
    reasons: Reasons = ([[] for _ in range(n)], [[] for _ in range(n)])
    shown: dict[tuple[int, int, type, Any], str] = {}
    for side, pushing, words in ((0, pushes >= MIN_REASON, "raises"), (1, pushes <= -MIN_REASON, "lowers")):
        pushing &= np.cumsum(pushing, axis=1) <= REASONS_PER_SIDE
        leads, at = np.nonzero(pushing)  # lead by lead, strongest first
        out_side = reasons[side]
        for i, j in zip(leads.tolist(), order[leads, at].tolist(), strict=True):
            value = json_columns[j][i]
            key = (side, j, type(value), value)  # the type too: True == 1, but reads "yes"
            text = shown.get(key)
            if text is None:
                text = shown[key] = _reason(labels[j], formats[j], value, words)
            out_side[i].append(text)
    return reasons


def _reasons_of_each(
    rows: list[list[float]], order: list[list[int]], json_columns: list[list[Any]], labels: Sequence[str], formats: list[Any]
) -> Reasons:
    """`_reasons_of_batch` lead by lead (tests: a batch and its leads one at a time explain alike)."""
    reasons: Reasons = ([], [])
    for i, (row, row_order) in enumerate(zip(rows, order, strict=True)):
        up: list[str] = []
        down: list[str] = []
        for j in row_order:  # already by |contribution|, so the first ones found are the top ones
            c = row[j]
            if c >= MIN_REASON:
                if len(up) < REASONS_PER_SIDE:
                    up.append(_reason(labels[j], formats[j], json_columns[j][i], "raises"))
                elif len(down) == REASONS_PER_SIDE:
                    break  # both sides are full
            elif c <= -MIN_REASON:
                if len(down) < REASONS_PER_SIDE:
                    down.append(_reason(labels[j], formats[j], json_columns[j][i], "lowers"))
                elif len(up) == REASONS_PER_SIDE:
                    break
            else:
                break  # the rest push even less
        reasons[0].append(up)
        reasons[1].append(down)
    return reasons


def _reason(label: str, fmt: Any, value: Any, words: str) -> str:
    """One reason in the shared vocabulary: "Demo requests in the last 90 days: 2 (raises the score)"."""
    return f"{label}: {fmt(value)} ({words} the score)"


def lightgbm_threads(rows: int, small: int, threads: int | None) -> dict[str, int]:
    """LightGBM's `num_threads` for a call on `rows` rows: one below `small` (waking a pool costs more),
    else `threads` (None: LightGBM's default, every core)."""
    if rows < small:
        return {"num_threads": 1}
    return {} if threads is None else {"num_threads": threads}


def encode(encoder: FeatureEncoder, frame: pd.DataFrame) -> np.ndarray:
    """The bundle's own encoding of a feature frame (`FeatureEncoder.transform`); kept for callers of this name."""
    return encoder.transform(frame)


def _json_column(col: np.ndarray) -> list[Any]:
    """`json_value` over a column: float64 columns at once, the common types (float, str) inline."""
    if col.dtype == np.float64 and len(col) >= SMALL_BATCH:  # numpy's set-up costs more on a few rows
        out = col.astype(object)  # Python floats
        finite = np.isfinite(col)
        whole = finite & (np.abs(col) < _BIG) & (np.trunc(col) == col)
        out[whole] = col[whole].astype(np.int64).tolist()
        out[~finite] = None
        return out.tolist()
    out_list: list[Any] = []
    append = out_list.append
    for v in col.tolist():
        t = type(v)
        if t is float:
            if v - v == 0.0:  # finite (NaN and ±inf give NaN here)
                append(int(v) if v.is_integer() and -_BIG < v < _BIG else v)
            else:
                append(None)
        elif t is str:
            append(v)
        else:
            append(json_value(v))
    return out_list


_BIG = float(2**53)


def _label(defs: Definitions, key: str) -> str:
    try:
        return defs.feature(key).label
    except KeyError:  # a model feature the current definitions no longer word (readiness refuses those)
        return key.replace("_", " ")


def json_value(value: Any) -> Any:
    """numpy/pandas scalars and missing markers to plain JSON values."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f) or math.isinf(f):
            return None
        return int(f) if f.is_integer() and abs(f) < 2**53 else f
    return str(value)


def formatter(defs: Definitions, key: str) -> Any:
    try:
        feature = defs.feature(key)
    except KeyError:
        return format_value
    if feature.kind == "icp_match" or feature.type == "boolean":
        return _yes_no
    return format_value


def _yes_no(value: Any) -> str:
    if value is None:
        return "unknown"
    return "yes" if bool(value) else "no"


def format_value(value: Any) -> str:
    """A value as people read it: 2, 40,000,000, 3.5, Software, unknown."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)

"""Raw stored fields + an as-of time (+ request overrides) → the model's feature values.

This is the ONE place features are finished, offline (`store.training_frame`, as-of = the
entity timestamp) and online (`store.OnlineFeatures`, as-of = now): recency and age relative to
the as-of time, ICP fit from the attributes, counts of a known lead with no events as 0, and
request overrides applied before anything is derived. Training and serving therefore cannot
disagree about what a feature means. It works on plain sequences so one row costs microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from features.transform import CREATED_AT, LAST_ACTIVITY_AT, needed_columns
from samepage.definitions import Definitions, Feature
from samepage.errors import InvalidAttribute
from samepage.values import FALSE_WORDS, TRUE_WORDS, is_missing, utc_timestamp  # `derive.is_missing` stays importable

_DAY_SECONDS = 86_400.0
_PLAIN_NUMBERS = {int, float, bool, np.float64, type(None)}

RawColumns = Mapping[str, Sequence[Any] | np.ndarray]
Overrides = Sequence[Mapping[str, Any] | None]


# -- coercion ---------------------------------------------------------------------------------
def coerce(name: str, value: Any, kind: str) -> Any:
    """One caller-supplied value in the feature's type; `InvalidAttribute` (a ValueError) names the field."""
    if is_missing(value):
        return None
    where = f"attributes.{name}"
    if kind == "category":
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 2.0 from a JSON client means the code "2"
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            try:
                text = str(value).strip()
            except ValueError:  # an integer beyond Python's digit limit for str()
                raise InvalidAttribute(where, "expected text, got an integer too long to be a code") from None
            return text or None
        raise InvalidAttribute(where, f"expected text, got {shown(value)}")
    if kind == "number":
        if isinstance(value, bool):
            raise InvalidAttribute(where, f"expected a number, got {shown(value)}")
        try:
            number = float(value)
        except OverflowError:  # a 401-digit integer: no float holds it (and its repr is no help)
            raise InvalidAttribute(where, "expected a finite number, got one too large for a float") from None
        except (TypeError, ValueError):
            raise InvalidAttribute(where, f"expected a number, got {shown(value)}") from None
        if not math.isfinite(number):
            raise InvalidAttribute(where, f"expected a finite number, got {shown(value)}")
        return number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise InvalidAttribute(where, f"expected true or false, got {shown(value)}")
    if kind == "timestamp":
        if not isinstance(value, (str, datetime)):  # a bare number would silently mean 1970
            raise InvalidAttribute(where, f"expected an ISO 8601 time, got {shown(value)}")
        try:
            stamp = pd.Timestamp(value)
        except (TypeError, ValueError):
            raise InvalidAttribute(where, f"expected an ISO 8601 time, got {shown(value)}") from None
        if stamp is pd.NaT:
            return None
        return utc_timestamp(stamp)
    raise InvalidAttribute(where, "cannot be overridden")


def shown(value: Any, limit: int = 60) -> str:
    """The value as the message shows it: its repr, cut short (a message must not echo a megabyte)."""
    try:
        text = repr(value)
    except ValueError:  # int beyond str()'s digit limit
        return "an integer too long to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def override_targets(defs: Definitions, kinds: Mapping[str, str] | None = None) -> dict[str, tuple[str, str, bool]]:
    """Accepted override names → (stored field or feature key, kind, applies after deriving)."""
    targets: dict[str, tuple[str, str, bool]] = {}
    stored = dict(needed_columns(defs))
    stored.update(kinds or {})
    stored[CREATED_AT] = "timestamp"
    stored[LAST_ACTIVITY_AT] = "timestamp"
    for column, kind in stored.items():
        targets[column] = (column, kind, False)
    for f in defs.features:
        if f.kind == "attribute":
            targets[f.key] = (f.column, str(f.type), False)
        elif f.kind in ("event_count", "distinct_channels"):
            targets[f.key] = (f.key, "number", False)
        else:
            targets[f.key] = (f.key, "number", True)
    return targets


# -- column helpers ---------------------------------------------------------------------------
def _texts(values: Sequence[Any] | np.ndarray | None, n: int) -> list[str | None]:
    if values is None:
        return [None] * n
    return [v if v.__class__ is str else None if is_missing(v) else str(v) for v in values]


def _numbers(values: Sequence[Any] | np.ndarray | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return values.astype("float64")
    if set(map(type, values)) <= _PLAIN_NUMBERS:  # what `float` takes exactly; None becomes NaN
        return np.array(values, dtype="float64")
    return np.array([np.nan if is_missing(v) else float(v) for v in values], dtype="float64")


def _seconds(values: Sequence[Any] | np.ndarray | pd.Series | None, n: int) -> np.ndarray:
    """Epoch seconds (float, NaN when missing) from datetimes, Timestamps or ISO strings."""
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        ns = values.astype("datetime64[ns]").astype("int64").astype("float64")
        return np.where(np.isnat(values), np.nan, ns / 1e9)
    out = np.empty(n, dtype="float64")
    for i, v in enumerate(values):
        if is_missing(v):
            out[i] = np.nan
        elif isinstance(v, np.datetime64):  # a stored value beside an override (see OnlineFeatures.raw)
            out[i] = np.nan if np.isnat(v) else v.astype("datetime64[ns]").astype("int64") / 1e9
        elif isinstance(v, datetime):  # pd.Timestamp is a datetime too
            out[i] = (v if v.tzinfo is not None else v.replace(tzinfo=UTC)).timestamp()
        else:
            out[i] = utc_timestamp(v).timestamp()
    return out


def _fold(value: str | None) -> str | None:
    return None if value is None else value.strip().casefold()


# -- derivation -------------------------------------------------------------------------------
def apply_overrides(
    raw: RawColumns, n: int, overrides: Overrides, targets: Mapping[str, tuple[str, str, bool]]
) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
    """Caller values win over stored ones: returns updated raw columns and per-row late overrides."""
    if len(overrides) != n:
        raise ValueError(f"overrides: {len(overrides)} given for {n} leads")
    columns: dict[str, list[Any]] = {}
    late: list[dict[str, Any]] = [{} for _ in range(n)]
    for i, row in enumerate(overrides):
        for name, value in (row or {}).items():
            if name not in targets:
                raise InvalidAttribute(f"attributes.{name}", "unknown attribute (not a lead column or feature)")
            field, kind, after = targets[name]
            coerced = coerce(name, value, kind)
            if after:
                late[i][field] = np.nan if coerced is None else float(coerced)
                continue
            if field not in columns:
                stored = raw.get(field)
                columns[field] = list(stored) if stored is not None else [None] * n
            columns[field][i] = coerced
    merged: dict[str, Any] = dict(raw)
    merged.update(columns)
    return merged, late


def known_rows(raw: RawColumns, n: int) -> np.ndarray:
    """Which of `n` rows the store knows: those with a stored `created_at`."""
    return ~np.isnan(_seconds(raw.get(CREATED_AT), n))


def derive(
    raw: RawColumns,
    as_of: Sequence[Any] | np.ndarray | pd.Series,
    defs: Definitions,
    overrides: Overrides | None = None,
    kinds: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Feature values for `len(as_of)` rows, keyed and ordered like `defs.feature_keys`.

    `raw` holds the stored fields by name (attribute columns, `created_at`, engagement counts,
    `last_activity_at`); absent fields are missing. A row is known when it has `created_at` in
    the store (before overrides); a known row without engagement rows counts 0 events.
    Categories come back as object arrays (None when missing), everything else as float64.
    """
    n = len(as_of)
    now = _seconds(as_of, n)
    known = known_rows(raw, n)
    late: list[dict[str, Any]] = []
    if overrides is not None and (len(overrides) != n or any(overrides)):  # all empty: nothing to apply
        raw, late = apply_overrides(raw, n, overrides, override_targets(defs, kinds))
    created = _seconds(raw.get(CREATED_AT), n)
    last = _seconds(raw.get(LAST_ACTIVITY_AT), n)
    out: dict[str, np.ndarray] = {}
    texts: dict[str, list[str | None]] = {}

    def text(column: str) -> list[str | None]:
        if column not in texts:
            texts[column] = _texts(raw.get(column), n)
        return texts[column]

    for f in defs.features:
        if f.kind == "attribute":
            if f.type == "category":
                out[f.key] = np.array(text(f.column), dtype=object)
            else:
                out[f.key] = _numbers(raw.get(f.column), n)
        elif f.kind in ("event_count", "distinct_channels"):
            counts = _numbers(raw.get(f.key), n)
            out[f.key] = np.where(np.isnan(counts) & known, 0.0, counts)
        elif f.kind == "recency":
            out[f.key] = (now - last) / _DAY_SECONDS
        elif f.kind == "age":
            out[f.key] = (now - created) / _DAY_SECONDS
        else:
            out[f.key] = _icp_match(f, raw, text, n, defs)
    for i, row in enumerate(late):
        for key, value in row.items():
            out[key][i] = value
    return out


def _icp_match(f: Feature, raw: RawColumns, text: Any, n: int, defs: Definitions) -> np.ndarray:
    """1.0 when the lead fits the ICP on `f.match`, 0.0 when not, NaN when the input is missing."""
    icp = defs.icp
    if f.match == "employees":
        sizes = _numbers(raw.get("employees"), n)
        inside = np.array([icp.employees.contains(float(v)) for v in sizes], dtype="float64")
        return np.where(np.isnan(sizes), np.nan, inside)
    if f.match in ("industry", "country"):
        allowed = {v.casefold() for v in (icp.industries if f.match == "industry" else icp.countries)}
        values = text(f.match)
        fit = {v: np.nan if v is None else float(_fold(v) in allowed) for v in set(values)}  # once per distinct value
        return np.array([fit[v] for v in values], dtype="float64")
    seniorities = {v.casefold() for v in icp.personas.seniorities}
    departments = {v.casefold() for v in icp.personas.departments}
    titles = [t.casefold() for t in icp.personas.titles_contain]

    def persona(seniority: str | None, department: str | None, title: str | None) -> float:
        if seniority is None and department is None and title is None:
            return np.nan
        title = _fold(title)
        return float(
            _fold(seniority) in seniorities
            or _fold(department) in departments
            or (title is not None and any(t in title for t in titles))
        )

    rows = list(zip(text("seniority"), text("department"), text("job_title"), strict=True))
    fit_rows = {row: persona(*row) for row in set(rows)}  # once per distinct (seniority, department, title)
    return np.array([fit_rows[row] for row in rows], dtype="float64")


@dataclass(frozen=True, slots=True)
class FeatureColumns:
    """Derived online features: `values[key]` per feature key (categories as object arrays with None,
    everything else float64 with NaN) and `known` (the store had the lead), all in request order."""

    values: dict[str, np.ndarray]
    known: np.ndarray

    def __len__(self) -> int:
        return len(self.known)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.known if key == "known" else self.values[key]

"""Canonical tables → dated feature rows that Feast serves point-in-time.

Two sources come out: `lead_attributes` (one row per lead, timestamped at `created_at`, holding
every attribute column) and `lead_engagement` (one row per lead and change point). Windowed
counts are step functions of time that change only when an event happens or leaves a window,
so a row at each change point makes Feast's "latest row at or before t" exact for any t.
Times are kept to the second, rounded UP: an event is counted from the first whole second at or
after it happened, so a row never holds an event that happened after its timestamp.
Recency, age and ICP fit are not stored: they depend on the as-of time and are derived at read
time by `features.derive` (the same code offline and online).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.definitions import Definitions
from features.tables import CanonicalTables

LEAD_ID = "lead_id"
TIMESTAMP = "event_timestamp"
CREATED_AT = "created_at"
LAST_ACTIVITY_AT = "last_activity_at"
RESERVED = {LEAD_ID, TIMESTAMP, LAST_ACTIVITY_AT}
# Lead columns the ICP fit features read (canonical names) and their kinds.
ICP_COLUMNS: dict[str, dict[str, str]] = {
    "industry": {"industry": "category"},
    "employees": {"employees": "number"},
    "country": {"country": "category"},
    "persona": {"seniority": "category", "department": "category", "job_title": "category"},
}
ENGAGEMENT_KINDS = ("event_count", "distinct_channels", "recency")
_SECOND = 1_000_000_000
_DAY_SECONDS = 86_400


@dataclass
class FeatureTables:
    """What the transform produces: the two Feast sources and the attribute columns' kinds.

    `attribute_kinds` maps every attribute column (plus `created_at`) to category, number,
    boolean or timestamp; `engagement` is None when the definitions have no engagement feature.
    """

    attributes: pd.DataFrame
    attribute_kinds: dict[str, str]
    engagement: pd.DataFrame | None


def needed_columns(defs: Definitions) -> dict[str, str]:
    """Lead columns the features read, with their kinds (attribute features and ICP inputs)."""
    needed: dict[str, str] = {}
    for f in defs.features:
        if f.kind == "attribute":
            needed[f.column] = str(f.type)
        elif f.kind == "icp_match" and f.match is not None:
            for column, kind in ICP_COLUMNS[f.match].items():
                needed.setdefault(column, kind)
    return needed


def engagement_keys(defs: Definitions) -> list[str]:
    """Stored engagement fields: the windowed counts and channel counts, in definitions order."""
    return [f.key for f in defs.features if f.kind in ("event_count", "distinct_channels")]


def has_engagement(defs: Definitions) -> bool:
    return any(f.kind in ENGAGEMENT_KINDS for f in defs.features)


def transform(tables: CanonicalTables, defs: Definitions) -> FeatureTables:
    """Build both sources; raises ValueError naming the column when a lead column is unusable."""
    attributes, kinds = attribute_rows(tables.leads, defs)
    engagement = engagement_rows(tables.events, defs) if has_engagement(defs) else None
    if engagement is not None:
        clash = sorted(set(engagement.columns) & set(kinds) - {LEAD_ID, TIMESTAMP})
        if clash:
            raise ValueError(f"leads: attribute columns {clash} have the names of engagement features")
    return FeatureTables(attributes=attributes, attribute_kinds=kinds, engagement=engagement)


# -- attributes -------------------------------------------------------------------------------
def _kind_of(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp"
    return "category"


def _as_kind(series: pd.Series, kind: str, column: str) -> pd.Series:
    """One column in the type Feast stores; bad values raise naming column and row."""
    if kind == "number":
        out = pd.to_numeric(series.astype("object").where(series.notna(), None), errors="coerce")
        bad = out.isna() & series.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"leads: column {column!r}, row {row + 1}: {series.iloc[row]!r} is not a number")
        return out.astype("float64")
    if kind == "boolean":
        truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        keys = series.astype("string").str.strip().str.lower()
        out = keys.map(truth).astype("object")
        bad = out.isna() & series.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"leads: column {column!r}, row {row + 1}: {series.iloc[row]!r} is not a boolean")
        return out.where(out.notna(), None)
    if kind == "timestamp":
        return pd.to_datetime(series, utc=True, errors="coerce")
    text = series.astype("string")
    return text.astype("object").where(text.notna(), None)


def attribute_rows(leads: pd.DataFrame, defs: Definitions) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per lead at its `created_at`: every attribute column, plus those features need."""
    for column in (LEAD_ID, CREATED_AT):
        if column not in leads.columns:
            raise ValueError(f"leads: missing required column {column!r}")
    reserved = sorted(RESERVED & set(leads.columns) - {LEAD_ID})
    if reserved:
        raise ValueError(f"leads: columns {reserved} are reserved names in the feature store")
    needed = needed_columns(defs)
    created = pd.to_datetime(leads[CREATED_AT], utc=True)
    out: dict[str, pd.Series] = {
        LEAD_ID: leads[LEAD_ID].astype("string").astype("object"),
        TIMESTAMP: created,
        CREATED_AT: created,
    }
    kinds: dict[str, str] = {CREATED_AT: "timestamp"}
    for column in leads.columns:
        if column in (LEAD_ID, CREATED_AT):
            continue
        kind = needed.get(column) or _kind_of(leads[column])
        out[column] = _as_kind(leads[column], kind, column)
        kinds[column] = kind
    for column, kind in needed.items():
        if column not in out:
            # A feature whose column the data lacks is missing for every lead, not an error:
            # X Education has no seniority, for instance.
            out[column] = pd.Series([None] * len(leads), dtype="float64" if kind == "number" else "object")
            kinds[column] = kind
    frame = pd.DataFrame(out)
    frame.index = pd.RangeIndex(len(frame))
    return frame, kinds


# -- engagement -------------------------------------------------------------------------------
def _counters(defs: Definitions) -> tuple[list[tuple[str, list[str], int]], dict[str, list[str]]]:
    """(name, event types, window seconds) per running count; channel features → their counters."""
    counters: list[tuple[str, list[str], int]] = []
    channel_parts: dict[str, list[str]] = {}
    channels: dict[str, list[str]] = {}
    for e in defs.event_types:
        channels.setdefault(e.channel, []).append(e.key)
    for f in defs.features:
        if f.kind == "event_count":
            counters.append((f.key, [str(f.event_type)], int(f.window_days or 0) * _DAY_SECONDS))
        elif f.kind == "distinct_channels":
            names = []
            for channel, types in sorted(channels.items()):
                name = f"_{f.key}__{channel}"
                counters.append((name, types, int(f.window_days or 0) * _DAY_SECONDS))
                names.append(name)
            channel_parts[f.key] = names
    return counters, channel_parts


def engagement_rows(events: pd.DataFrame, defs: Definitions) -> pd.DataFrame:
    """One row per (lead, second at which any count or the last activity changes).

    Every event adds +1 to each count it belongs to at its time and -1 when it leaves the
    window, so the running sum over a lead's sorted deltas is the windowed count, and a
    lead's deltas sum to zero: one global cumulative sum serves every lead at once.
    """
    counters, channel_parts = _counters(defs)
    keys = engagement_keys(defs)
    ev = events.loc[events[LEAD_ID].notna() & events["occurred_at"].notna(), [LEAD_ID, "occurred_at", "type"]]
    if ev.empty:
        return _empty_engagement(keys)
    lead_codes, lead_ids = pd.factorize(ev[LEAD_ID].astype("string"), sort=True)
    occurred = _nanoseconds(ev["occurred_at"])
    # Ceiling to the second: counting from the first whole second at or after the event.
    seconds = -((-occurred) // _SECOND)
    base = int(seconds.min())
    rel = seconds - base
    longest = max((w for _n, _t, w in counters), default=0)
    if int(rel.max()) + longest >= 1 << 32:
        raise ValueError("events: occurred_at spans more than 100 years; check the dates")
    type_codes, type_names = pd.factorize(ev["type"].astype("string"))
    lead64 = lead_codes.astype("int64") << 32

    key_parts = [lead64 | rel]  # every event marks activity
    counter_parts: list[np.ndarray] = [np.full(len(rel), -1, dtype="int16")]
    delta_parts: list[np.ndarray] = [np.zeros(len(rel), dtype="int8")]
    type_index = {str(name): i for i, name in enumerate(type_names)}
    for c, (_name, types, window) in enumerate(counters):
        codes = [type_index[t] for t in types if t in type_index]
        mask = np.isin(type_codes, codes)
        if not mask.any():
            continue
        k = lead64[mask] | rel[mask]
        key_parts += [k, k + window]
        n = int(mask.sum())
        counter_parts += [np.full(2 * n, c, dtype="int16")]
        delta_parts += [np.ones(n, dtype="int8"), -np.ones(n, dtype="int8")]
    all_keys = np.concatenate(key_parts)
    counter_idx = np.concatenate(counter_parts)
    delta = np.concatenate(delta_parts)
    del key_parts, counter_parts, delta_parts
    group_keys, group = np.unique(all_keys, return_inverse=True)
    del all_keys
    n_groups = len(group_keys)

    values: dict[str, np.ndarray] = {}
    for c, (name, _types, _window) in enumerate(counters):
        mask = counter_idx == c
        step = np.bincount(group[mask], weights=delta[mask], minlength=n_groups)
        values[name] = np.rint(np.cumsum(step)).astype("int32")
    for key, parts in channel_parts.items():
        values[key] = np.sum([values.pop(p) > 0 for p in parts], axis=0, dtype="int32") if parts else (
            np.zeros(n_groups, dtype="int32")
        )

    group_lead = group_keys >> 32
    group_rel = group_keys & 0xFFFFFFFF
    active = np.bincount(group[counter_idx == -1], minlength=n_groups) > 0
    last = np.maximum.accumulate(np.where(active, np.arange(n_groups), -1))
    has_last = (last >= 0) & (group_lead[np.maximum(last, 0)] == group_lead)
    last_seconds = np.where(has_last, group_rel[np.maximum(last, 0)] + base, 0)

    frame = pd.DataFrame({LEAD_ID: np.asarray(lead_ids, dtype=object)[group_lead]})
    frame[TIMESTAMP] = pd.to_datetime((group_rel + base) * _SECOND, utc=True)
    for key in keys:
        frame[key] = values[key]
    last_at = pd.to_datetime(last_seconds * _SECOND, utc=True)
    frame[LAST_ACTIVITY_AT] = last_at.where(has_last, pd.NaT)
    return frame


def _nanoseconds(series: pd.Series) -> np.ndarray:
    """UTC epoch nanoseconds of a time column (naive times are taken as UTC)."""
    stamps = pd.to_datetime(series, utc=True).dt.as_unit("ns")
    return stamps.dt.tz_localize(None).to_numpy().astype("int64")


def _empty_engagement(keys: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {LEAD_ID: pd.Series(dtype="object"), TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]")}
    )
    for key in keys:
        frame[key] = pd.Series(dtype="int32")
    frame[LAST_ACTIVITY_AT] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame

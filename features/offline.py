"""Every lead's stored fields as of one time, read in chunks from the Feast Parquet sources.

What `samepage score --all` reads instead of one online look-up per lead: the latest
`lead_attributes` row and the latest `lead_engagement` row at or before `now` per lead, which
are the values the online store serves at `now` (engagement rows sit at every change point, so
the latest one is exact; `features.activity.engagement_at` computes the same numbers online).
Times are floored to the second, as the online store keeps them. Memory: one chunk of leads
plus one compact engagement row per lead with events (never the full change-point history).
When every `lead_activity` row (one per lead, its recent events; stamped at the build) is at or
before `now`, `RecentActivity` counts the engagement from it instead, as the online read does: the
same numbers (tested), from 1M rows instead of every change point (91.7M rows at 1M leads).
`ChunkFeatures` offers such a chunk through the `OnlineFeatures.get`/`attributes` interface, so
the scorer derives and explains it with the same code as `/v1/score`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.activity import ACTIVITY_SOURCE, EARLIER, SECONDS, TYPES, counters, engagement_of_events, type_codes
from features.derive import FeatureColumns, derive, known_rows
from features.transform import (
    ATTRIBUTES_SOURCE,
    ENGAGEMENT_SOURCE,
    LAST_ACTIVITY_AT,
    LEAD_ID,
    TIMESTAMP,
    engagement_keys,
    has_engagement,
    sources_dir,
)
from samepage.definitions import Definitions
from samepage.settings import Settings
from samepage.values import utc_timestamp

BATCH_ROWS = 500_000  # engagement rows read at a time


@dataclass(frozen=True)
class Sources:
    """The two Parquet sources `samepage features` wrote (engagement None when the definitions have none)."""

    attributes: Path
    engagement: Path | None
    activity: Path | None = None  # the online form of engagement (`features.activity`), where written

    @classmethod
    def of(cls, settings: Settings, defs: Definitions) -> Sources:
        folder = sources_dir(settings)
        attributes = folder / f"{ATTRIBUTES_SOURCE}.parquet"
        engagement = folder / f"{ENGAGEMENT_SOURCE}.parquet" if has_engagement(defs) else None
        for path in (attributes, engagement):
            if path is not None and not path.exists():
                raise FileNotFoundError(f"{path}: no feature source; run `samepage features` first")
        activity = folder / f"{ACTIVITY_SOURCE}.parquet"
        return cls(attributes, engagement, activity if engagement is not None and activity.exists() else None)

    def n_leads(self) -> int:
        return int(pq.ParquetFile(self.attributes).metadata.num_rows)


def _seconds(values: pd.Series) -> np.ndarray:
    """A time column as naive UTC datetime64[s] (NaT where missing): the online store's precision."""
    stamps = pd.to_datetime(values, utc=True)
    return stamps.dt.tz_localize(None).to_numpy().astype("datetime64[s]")


def latest_engagement(
    path: Path, defs: Definitions, now: pd.Timestamp, batch_rows: int = BATCH_ROWS, threads: int | None = None
) -> pd.DataFrame:
    """One row per lead with events at or before `now`: its latest engagement row, indexed by lead_id.

    Among rows with equal timestamps the later one in the file wins; rows are ordered by (timestamp,
    position) of the kept row. Arrow and numpy throughout (lead ids read as the Parquet dictionary
    codes); pandas only for the one kept row per lead. The file's row groups are read in `threads`
    runs at once (None: one per core; Parquet decoding and numpy's sorts let go of the GIL), each
    keeping its batches' latest rows (`LatestRows`). Memory: a batch per thread plus the kept rows.
    """
    runs = row_group_runs(path, threads or os.cpu_count() or 1)
    if len(runs) > 1:
        with ThreadPoolExecutor(len(runs), thread_name_prefix="samepage-engagement") as pool:
            parts = list(pool.map(lambda run: LatestRows.of(path, defs, now, run, batch_rows), runs))
    else:
        parts = [LatestRows.of(path, defs, now, run, batch_rows) for run in runs]
    return LatestRows.merged(parts, defs)


class RecentActivity:
    """Every lead's activity row (`features.activity`: its recent events as lists, one row per lead), read
    once; the engagement fields of a chunk's leads at a time, computed as the online read computes them
    (`engagement_at`), instead of from the lead's latest point-in-time engagement row.

    Used only at or after the time every activity row carries (the build's): then the recent events
    hold every event a window at that time can count, and the engagement rows (written at every
    change point, window expiries included) hold the same numbers; tested equal. A lead whose events
    all come after that time has no engagement row yet: its fields are missing, as offline."""

    def __init__(self, table: pa.Table, defs: Definitions) -> None:
        """`table`: lead_id and the activity lists (TYPES, SECONDS, EARLIER), one row per lead; flattened once."""
        self._counted = counters(defs)
        self._fields = engagement_keys(defs)
        self._index = pd.Index(table.column(LEAD_ID).to_numpy(zero_copy_only=False))
        types, seconds = table.column(TYPES).combine_chunks(), table.column(SECONDS).combine_chunks()
        self._valid = pc.is_valid(types).to_numpy(zero_copy_only=False)
        self._lengths = pc.fill_null(pc.list_value_length(types), 0).to_numpy(zero_copy_only=False).astype("int64")
        self._starts = np.cumsum(self._lengths) - self._lengths
        names = pc.dictionary_encode(pc.list_flatten(types))
        self._codes = type_codes(self._counted)
        by_name = np.array([self._codes.get(v, -1) for v in names.dictionary.to_pylist()] + [-1], dtype="int64")
        self._types = by_name[pc.fill_null(names.indices, len(names.dictionary)).to_numpy(zero_copy_only=False)]
        self._seconds = pc.list_flatten(seconds).to_numpy(zero_copy_only=False).astype("float64")
        earlier = table.column(EARLIER).to_numpy().astype("datetime64[s]")  # as the online store keeps it
        self._earlier = np.where(np.isnat(earlier), np.nan, earlier.astype("int64").astype("float64"))

    @classmethod
    def read(cls, path: Path, now: pd.Timestamp, defs: Definitions) -> RecentActivity | None:
        """The activity rows, when every one is at or before `now` and there is one per lead (else None)."""
        table = pq.read_table(path, columns=[LEAD_ID, TIMESTAMP, TYPES, SECONDS, EARLIER])
        stamps = table.column(TIMESTAMP)
        latest = pc.max(stamps).as_py() if len(stamps) else None
        if latest is None or stamps.null_count or pd.Timestamp(latest) > utc_timestamp(now):
            return None
        out = cls(table, defs)
        return out if out._index.is_unique else None

    def engagement(self, lead_ids: np.ndarray, now: pd.Timestamp) -> dict[str, np.ndarray]:
        """`latest_engagement`'s fields for these leads at `now`, in order (float64 counts, NaN where none)."""
        rows = self._index.get_indexer(lead_ids)
        have = rows >= 0
        picked = rows[have]
        lengths = self._lengths[picked]
        # each picked lead's events, in order: its start repeated over its events plus 0, 1, 2, ...
        at = np.repeat(self._starts[picked] - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))
        owner = np.repeat(np.flatnonzero(have), lengths)
        found = np.zeros(len(rows), dtype=bool)
        found[have] = self._valid[picked]
        earlier = np.full(len(rows), np.nan)
        earlier[have] = self._earlier[picked]
        as_of = utc_timestamp(now).value / 1e9
        seconds = self._seconds[at]
        as_of_each = np.full(len(rows), as_of)
        out = engagement_of_events(self._types[at], seconds, owner, found, earlier, as_of_each, self._counted, self._codes)
        # An engagement row at or before now exists once an event has happened by then (or an older one did).
        happened = np.bincount(owner[seconds <= as_of], minlength=len(rows)) > 0
        none_yet = found & ~happened & np.isnan(earlier)
        for key in self._fields:
            column = np.asarray(out[key], dtype="float64")
            column[none_yet] = np.nan
            out[key] = column
        return out


def row_group_runs(path: Path, n: int) -> list[list[int]]:
    """The file's row groups in at most `n` runs of neighbours, in file order."""
    groups = pq.ParquetFile(path).metadata.num_row_groups
    return [r.tolist() for r in np.array_split(np.arange(groups), max(1, min(n, groups))) if len(r)]


@dataclass
class LatestRows:
    """The latest engagement rows at or before a time of some row groups of the file (a lead's latest row
    among them, per batch: `merged` keeps one per lead), and which fields had nulls there."""

    batches: list[pa.RecordBatch]
    had_nulls: set[str]

    @classmethod
    def of(
        cls, path: Path, defs: Definitions, now: pd.Timestamp, row_groups: list[int], batch_rows: int = BATCH_ROWS
    ) -> LatestRows:
        fields = [*engagement_keys(defs), LAST_ACTIVITY_AT]
        cutoff = utc_timestamp(now).tz_localize(None).to_datetime64()
        source = pq.ParquetFile(path, read_dictionary=[LEAD_ID])  # a reader of its own per thread
        out = cls([], set())
        for batch in source.iter_batches(batch_size=batch_rows, row_groups=row_groups, columns=[LEAD_ID, TIMESTAMP, *fields]):
            out.had_nulls.update(name for name in fields if batch.column(name).null_count)
            stamps = batch.column(TIMESTAMP).to_numpy(zero_copy_only=False)  # naive UTC, NaT where missing
            rows = np.flatnonzero(stamps <= cutoff)  # NaT compares False: such rows are dropped, as before
            rows = rows[_last_rows(_codes(batch.column(LEAD_ID))[rows], stamps[rows])]
            latest = batch.take(pa.array(rows))
            ids = latest.column(LEAD_ID)  # a dictionary unless the ids are not text
            ids = ids.dictionary_decode() if pa.types.is_dictionary(ids.type) else ids
            out.batches.append(pa.RecordBatch.from_arrays([ids, *latest.columns[1:]], names=latest.schema.names))
        return out

    @staticmethod
    def merged(parts: Sequence[LatestRows], defs: Definitions) -> pd.DataFrame:
        """`latest_engagement`'s frame from the parts of consecutive runs of row groups, in file order."""
        fields = [*engagement_keys(defs), LAST_ACTIVITY_AT]
        kept = [b for part in parts for b in part.batches]
        had_nulls = set().union(*(part.had_nulls for part in parts))
        if not kept:
            return pd.DataFrame(columns=fields, index=pd.Index([], name=LEAD_ID))
        table = pa.Table.from_batches(kept)
        stamps = table.column(TIMESTAMP).to_numpy()
        rows = _last_rows(_codes(table.column(LEAD_ID).combine_chunks()), stamps)
        out = table.take(pa.array(rows)).to_pandas().set_index(LEAD_ID)[fields]
        for name in had_nulls:
            # An integer column with nulls in any batch: pandas read batch by batch made it float64 even
            # where the kept rows have none, and that is the dtype this has always returned.
            if pa.types.is_integer(table.schema.field(name).type):
                out[name] = out[name].astype("float64")
        out[LAST_ACTIVITY_AT] = _seconds(out[LAST_ACTIVITY_AT])
        return out


def _codes(ids: pa.Array) -> np.ndarray:
    """One integer per lead id (missing ids share one): equal ids, equal codes."""
    if not pa.types.is_dictionary(ids.type):
        ids = pc.dictionary_encode(ids, null_encoding="encode")
    # Arrow does not promise a dictionary without repeats (Parquet's readers give none today): re-encode it.
    values = pc.dictionary_encode(ids.dictionary, null_encoding="encode").indices.to_numpy()
    positions = pc.fill_null(ids.indices, len(values)).to_numpy()
    return np.append(values, len(values))[positions]


def _last_rows(codes: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Positions of each lead's latest row (the later one among equal stamps), in (stamp, position) order.

    What a stable sort by stamp then `drop_duplicates(keep="last")` keeps, with one stable sort of
    the lead codes (near linear on the sources' lead-grouped layout) instead of one of every row by stamp.
    """
    if not len(codes):
        return np.empty(0, dtype="int64")
    at = stamps.view("int64")
    order = np.argsort(codes, kind="stable")  # grouped by lead, file order within a lead
    by_lead, by_lead_at = codes[order], at[order]
    starts = np.flatnonzero(np.r_[True, by_lead[1:] != by_lead[:-1]])
    latest = np.repeat(np.maximum.reduceat(by_lead_at, starts), np.diff(np.r_[starts, len(order)]))
    ties = np.flatnonzero(by_lead_at == latest)  # every lead's rows at its latest stamp, in file order
    rows = np.sort(order[ties[np.r_[by_lead[ties[1:]] != by_lead[ties[:-1]], True]]])
    return rows[np.argsort(at[rows], kind="stable")]


def raw_columns(frame: pd.DataFrame, defs: Definitions) -> dict[str, Any]:
    """The fields `derive` reads, from a frame of attribute (and engagement) columns, as `OnlineFeatures.raw` gives them."""
    raw: dict[str, Any] = {}
    for column in frame.columns:
        if column in (LEAD_ID, TIMESTAMP):
            continue
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            raw[column] = _seconds(series)
        elif pd.api.types.is_float_dtype(series) or pd.api.types.is_integer_dtype(series):
            raw[column] = series.to_numpy(dtype="float64", na_value=np.nan)
        else:
            raw[column] = [None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v for v in series]
    return raw


def lead_chunks(
    sources: Sources,
    defs: Definitions,
    now: pd.Timestamp,
    chunk: int,
    engagement: pd.DataFrame | RecentActivity | None = None,
) -> Iterator[pd.DataFrame]:
    """The leads created at or before `now`, `chunk` at a time: attribute columns joined with their latest
    engagement (`engagement`: `latest_engagement`'s frame or the activity rows; None: read here)."""
    cutoff = utc_timestamp(now)
    if engagement is None and sources.engagement is not None:
        engagement = latest_engagement(sources.engagement, defs, cutoff)
    fields = [*engagement_keys(defs), LAST_ACTIVITY_AT]
    for batch in pq.ParquetFile(sources.attributes).iter_batches(batch_size=chunk):
        frame = batch.to_pandas()
        frame = frame[frame[TIMESTAMP] <= cutoff]
        if frame[LEAD_ID].duplicated().any():
            codes = pd.factorize(frame[LEAD_ID], use_na_sentinel=False)[0]
            frame = frame.iloc[_last_rows(codes, frame[TIMESTAMP].dt.tz_convert(None).to_numpy())]
        if isinstance(engagement, RecentActivity):
            computed = engagement.engagement(frame[LEAD_ID].to_numpy(), cutoff)
            for column in fields:
                frame[column] = computed[column]
        elif engagement is not None:
            got = engagement.reindex(frame[LEAD_ID].to_numpy())
            for column in got.columns:
                frame[column] = got[column].to_numpy()
        if len(frame):
            yield frame.reset_index(drop=True)


class ChunkFeatures:
    """One chunk of leads behind the `OnlineFeatures` interface the scorer reads (`columns`, `get`, `attributes`)."""

    def __init__(self, frame: pd.DataFrame, defs: Definitions) -> None:
        self.defs = defs
        self.ids = frame[LEAD_ID].astype(str).tolist()
        self._row = {lead_id: i for i, lead_id in enumerate(self.ids)}
        self._raw = raw_columns(frame, defs)
        self._attributes = [c for c in frame.columns if c not in (LEAD_ID, TIMESTAMP, LAST_ACTIVITY_AT, *engagement_keys(defs))]

    def columns(
        self, lead_ids: Sequence[str], overrides: Sequence[dict[str, Any] | None] | None = None, now: pd.Timestamp | None = None
    ) -> FeatureColumns:
        """The derived features of these ids (ids of this chunk), in order, as of `now`; like `OnlineFeatures.columns`."""
        when = pd.Timestamp.now(tz="UTC") if now is None else utc_timestamp(now)
        rows = np.array([self._row.get(i, -1) for i in lead_ids], dtype="int64")
        if (rows < 0).any():
            raise KeyError(f"lead {lead_ids[int(np.argmax(rows < 0))]!r} is not in this chunk")
        raw = {k: (v[rows] if isinstance(v, np.ndarray) else [v[r] for r in rows]) for k, v in self._raw.items()}
        known = known_rows(raw, len(rows))
        as_of = np.full(len(rows), when.tz_convert("UTC").tz_localize(None).to_datetime64())
        values = derive(raw, as_of, self.defs, overrides)
        return FeatureColumns({key: values[key] for key in self.defs.feature_keys}, known)

    def get(
        self, lead_ids: Sequence[str], overrides: Sequence[dict[str, Any] | None] | None = None, now: pd.Timestamp | None = None
    ) -> pd.DataFrame:
        """One row per id, in order: `defs.feature_keys` plus `known` (the `columns` as a frame)."""
        got = self.columns(lead_ids, overrides, now)
        frame = pd.DataFrame(dict(got.values), index=pd.RangeIndex(len(got)))
        frame["known"] = got.known
        return frame

    def attributes(self, lead_id: str) -> dict[str, Any] | None:
        """The lead's stored attributes (missing values as None), like `OnlineFeatures.attributes`."""
        row = self._row.get(lead_id)
        if row is None:
            return None
        out: dict[str, Any] = {}
        for name in self._attributes:
            value = self._raw[name][row]
            out[name] = None if isinstance(value, float) and np.isnan(value) else value
        return out

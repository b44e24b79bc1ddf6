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

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.partition import EventChunks, LeadChunk, empty_chunk
from samepage.definitions import Definitions
from samepage.settings import Settings
from samepage.tables import CanonicalTables
from samepage.values import parse_bool

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
ATTRIBUTES_SOURCE = "lead_attributes"
ENGAGEMENT_SOURCE = "lead_engagement"
SOURCES_DIR = "sources"  # under the Feast repo: the Parquet files its FileSources name
CHUNK_LEADS = 25_000  # leads per chunk: bounds memory whatever the total (100,000 leads: peak 1.2 GiB, 100k chunks 2.0)
WRITES_AHEAD = 2  # chunks the writer thread may have waiting while the next is computed
_SECOND = 1_000_000_000
_DAY_SECONDS = 86_400


@dataclass
class SourceSummary:
    """What `write_sources` wrote. `attribute_kinds` maps every attribute column (and
    `created_at`) to category, number, boolean or timestamp."""

    attribute_kinds: dict[str, str]
    n_attribute_rows: int
    n_engagement_rows: int
    with_engagement: bool
    first_timestamp: pd.Timestamp | None


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


def write_sources(
    tables: CanonicalTables,
    defs: Definitions,
    directory: Path,
    on_progress: Callable[[int, int], None] | None = None,
    extra: dict[str, pa.Table] | None = None,
    events: EventChunks | None = None,
    per_chunk: dict[str, Callable[[LeadChunk], pa.Table]] | None = None,
) -> SourceSummary:
    """Write both Feast sources (and the `extra` ones, by name) into `directory`; the one build path.

    With `events` (the events split by chunks of leads, `features.partition`) the engagement rows
    come from those, one chunk in memory at a time, instead of `tables.events`, and each
    `per_chunk` function gives that chunk's rows of one more source (same name rules as `extra`).
    `on_progress(leads_done, leads_total)` is called after each chunk of leads with events.
    All files are written in full under temporary names first and only then renamed into
    place, so a failure leaves the previous sources untouched. Raises ValueError naming the
    column (and row) when the leads table is unusable.
    """
    if per_chunk and events is None:
        raise ValueError("write_sources: per_chunk sources need the events by chunks of leads")
    attributes, kinds = attribute_rows(tables.leads, defs)
    stored = engagement_keys(defs)
    clash = sorted(set(stored) & set(kinds))
    if clash:
        raise ValueError(f"leads: attribute columns {clash} have the names of engagement features")
    directory.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []

    def stage(name: str) -> Path:
        path = directory / f"{name}.parquet"
        staged.append((path.with_suffix(".parquet.tmp"), path))
        return staged[-1][0]

    writers: dict[str, pq.ParquetWriter] = {}

    def append(name: str, table: pa.Table) -> None:
        if name not in writers:
            writers[name] = pq.ParquetWriter(stage(name), table.schema)
        writers[name].write_table(table)

    try:
        pq.write_table(_arrow(attributes, kinds), stage(ATTRIBUTES_SOURCE))
        starts = [attributes[TIMESTAMP].min()] if len(attributes) else []
        n_attributes = len(attributes)
        del attributes
        n_engagement = 0
        if has_engagement(defs):
            done = 0
            if events is not None:
                total = events.n_leads
                parts: Iterator[tuple[LeadChunk, pd.DataFrame]] = chunk_rows(events, defs)
            else:
                total = int(tables.events[LEAD_ID].nunique()) if on_progress is not None else 0
                parts = ((empty_chunk(), chunk) for chunk in engagement_chunks(tables.events, defs))
            try:
                # One thread converts and writes each chunk's rows, in order, while the next chunk is
                # computed: Arrow's conversion and Parquet's encoding run mostly without the GIL, so
                # they can take the second core. At most WRITES_AHEAD chunks wait, bounding the memory.
                with ThreadPoolExecutor(1, thread_name_prefix="samepage-sources") as pool:
                    pending: deque[Future[None]] = deque()
                    for part, chunk in parts:
                        more = [(name, rows_of(part)) for name, rows_of in (per_chunk or {}).items()]
                        pending.append(pool.submit(_append_chunk, append, chunk, more))
                        n_engagement += len(chunk)
                        starts.append(chunk[TIMESTAMP].min())
                        if on_progress is not None:
                            done += chunk[LEAD_ID].nunique()
                            on_progress(done, total)
                        while len(pending) > WRITES_AHEAD:
                            pending.popleft().result()
                    while pending:
                        pending.popleft().result()
                if ENGAGEMENT_SOURCE not in writers:  # no events: an empty, typed source
                    pq.write_table(_arrow(_empty_engagement(stored)), stage(ENGAGEMENT_SOURCE))
                for name, rows_of in (per_chunk or {}).items():
                    if name not in writers:
                        append(name, rows_of(empty_chunk()))
            finally:
                for writer in writers.values():
                    writer.close()
        for name, table in (extra or {}).items():
            pq.write_table(table, stage(name))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)
    return SourceSummary(
        attribute_kinds=kinds,
        n_attribute_rows=n_attributes,
        n_engagement_rows=n_engagement,
        with_engagement=has_engagement(defs),
        first_timestamp=min(starts) if starts else None,
    )


def _append_chunk(append: Callable[[str, pa.Table], None], engagement: pd.DataFrame, more: list[tuple[str, pa.Table]]) -> None:
    """One chunk's engagement rows (converted here, off the computing thread), then its rows of the other sources."""
    append(ENGAGEMENT_SOURCE, _arrow(engagement))
    for name, table in more:
        append(name, table)


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
        out = series.map(parse_bool).astype("object")
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
    ids = leads[LEAD_ID].astype("string")
    for problem, bad in (("is missing", ids.isna()), ("is a duplicate", ids.duplicated() & ids.notna())):
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"leads: column 'lead_id', row {row + 1}: {ids.iloc[row]!r} {problem}")
    needed = needed_columns(defs)
    created = pd.to_datetime(leads[CREATED_AT], utc=True, errors="coerce")
    if created.isna().any():
        row = int(np.flatnonzero(created.isna().to_numpy())[0])
        raise ValueError(f"leads: column 'created_at', row {row + 1}: {leads[CREATED_AT].iloc[row]!r} is not a time")
    out: dict[str, pd.Series] = {
        LEAD_ID: ids.astype("object"),
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


@dataclass
class _SortedEvents:
    """Events as sorted keys `lead << 32 | seconds since base`, with their type codes."""

    keys: np.ndarray
    type_codes: np.ndarray
    type_index: dict[str, int]
    lead_ids: pd.Index
    base: int


def _sorted_events(events: pd.DataFrame, longest_window: int) -> _SortedEvents | None:
    ev = events.loc[events[LEAD_ID].notna() & events["occurred_at"].notna(), [LEAD_ID, "occurred_at", "type"]]
    if ev.empty:
        return None
    lead_codes, lead_ids = pd.factorize(ev[LEAD_ID].astype("string"))
    occurred = _nanoseconds(ev["occurred_at"])
    # Ceiling to the second: an event counts from the first whole second at or after it.
    seconds = -((-occurred) // _SECOND)
    base = int(seconds.min())
    rel = seconds - base
    _check_span(int(rel.max()), longest_window)
    type_codes, type_names = pd.factorize(ev["type"].astype("string"))
    keys = (lead_codes.astype("int64") << 32) | rel
    del occurred, seconds, rel, lead_codes
    order = np.argsort(keys, kind="stable")
    return _SortedEvents(
        keys=keys[order],
        type_codes=type_codes[order].astype("int16"),
        type_index={str(name): i for i, name in enumerate(type_names)},
        lead_ids=pd.Index(np.asarray(lead_ids, dtype=object), dtype=object),
        base=base,
    )


def engagement_chunks(
    events: pd.DataFrame, defs: Definitions, leads_per_chunk: int = CHUNK_LEADS
) -> Iterator[pd.DataFrame]:
    """The engagement rows in chunks of whole leads, from events in memory (see `chunk_rows`).

    One row per (lead, second at which any count or the last activity changes). Each event is a
    key `lead << 32 | seconds`; sorted, the keys of one event type are sorted too, and every
    event and every event leaving a window is a change point. The count at a change point is
    a running sum of +1 (event) and -1 (leaves the window); a lead's steps sum to zero, so one
    running sum serves all the leads of a chunk. No loop over leads.
    """
    counters, channel_parts = _counters(defs)
    keys = engagement_keys(defs)
    ev = _sorted_events(events, max((w for _n, _t, w in counters), default=0))
    if ev is None:
        return
    n_leads = len(ev.lead_ids)
    codes_of = [(name, [ev.type_index[t] for t in types if t in ev.type_index], w) for name, types, w in counters]
    for first in range(0, n_leads, leads_per_chunk):
        lo, hi = np.searchsorted(ev.keys, [first << 32, (first + leads_per_chunk) << 32])
        yield _chunk(ev, ev.keys[lo:hi], ev.type_codes[lo:hi], codes_of, channel_parts, keys)


def chunk_rows(events: EventChunks, defs: Definitions) -> Iterator[tuple[LeadChunk, pd.DataFrame]]:
    """Each chunk of `events` (`features.partition`) with its engagement rows: the rows and row order
    `engagement_chunks` gives with the same chunk size, one chunk in memory at a time."""
    counters, channel_parts = _counters(defs)
    keys = engagement_keys(defs)
    if events.first_second is None or events.last_second is None:
        return
    _check_span(events.last_second - events.first_second, max((w for _n, _t, w in counters), default=0))
    type_index = {name: i for i, name in enumerate(events.type_names)}
    codes_of = [(name, [type_index[t] for t in types if t in type_index], w) for name, types, w in counters]
    for part in events:
        event_keys = (part.leads << 32) | (part.seconds - events.first_second)
        order = np.argsort(event_keys, kind="stable")
        ev = _SortedEvents(event_keys[order], part.types[order], type_index, events.lead_ids, events.first_second)
        yield part, _chunk(ev, ev.keys, ev.type_codes, codes_of, channel_parts, keys)


def _check_span(span: int, longest_window: int) -> None:
    if span + longest_window >= 1 << 32:
        raise ValueError("events: occurred_at spans more than 130 years; check the dates")


def _chunk(
    ev: _SortedEvents,
    event_keys: np.ndarray,
    type_codes: np.ndarray,
    codes_of: list[tuple[str, list[int], int]],
    channel_parts: dict[str, list[str]],
    keys: list[str],
) -> pd.DataFrame:
    counted = [(name, event_keys[np.isin(type_codes, codes)], w) for name, codes, w in codes_of]
    by_window: dict[int, set[int]] = {}
    for _name, codes, w in codes_of:
        by_window.setdefault(w, set()).update(codes)
    parts = [event_keys] + [event_keys[np.isin(type_codes, list(codes))] + w for w, codes in by_window.items()]
    change = np.concatenate(parts)
    del parts
    change.sort(kind="stable")  # a merge of sorted runs
    change = change[np.concatenate(([True], change[1:] != change[:-1]))]
    n_rows = len(change)
    values: dict[str, np.ndarray] = {}
    for name, inc, window in counted:
        # Every counted key and shifted key is itself a change point: find its row and step.
        step = np.bincount(np.searchsorted(change, inc), minlength=n_rows)
        step -= np.bincount(np.searchsorted(change, inc + window), minlength=n_rows)
        values[name] = np.cumsum(step).astype("int32")
        del step
    for key, names in channel_parts.items():
        total = np.zeros(n_rows, dtype="int32")
        for part in names:
            total += values.pop(part) > 0
        values[key] = total
    has_event = np.bincount(np.searchsorted(change, event_keys), minlength=n_rows) > 0
    last = change[np.maximum.accumulate(np.where(has_event, np.arange(n_rows), 0))]
    del has_event
    frame = pd.DataFrame({LEAD_ID: pd.Categorical.from_codes((change >> 32).astype("int32"), categories=ev.lead_ids)})
    frame[TIMESTAMP] = _utc(((change & 0xFFFFFFFF) + ev.base) * _SECOND)
    for key in keys:
        frame[key] = values.pop(key)
    frame[LAST_ACTIVITY_AT] = _utc(((last & 0xFFFFFFFF) + ev.base) * _SECOND)
    return frame


def engagement_rows(events: pd.DataFrame, defs: Definitions) -> pd.DataFrame:
    """All engagement rows in memory (see `engagement_chunks`); for small data and tests."""
    chunks = list(engagement_chunks(events, defs))
    if not chunks:
        return _empty_engagement(engagement_keys(defs))
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    frame[LEAD_ID] = frame[LEAD_ID].astype(object)
    return frame


def _utc(nanoseconds: np.ndarray) -> pd.Series:
    return pd.Series(nanoseconds.astype("datetime64[ns]")).dt.tz_localize("UTC")


_ARROW_TYPES = {
    "category": pa.string(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("ns", "UTC"),
}


def _arrow(frame: pd.DataFrame, kinds: dict[str, str] | None = None) -> pa.Table:
    """Plain Arrow for Feast: categorical ids as strings, an all-missing column typed by its kind."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, column in enumerate(table.schema):
        if pa.types.is_dictionary(column.type):
            table = table.set_column(i, column.name, table.column(i).cast(column.type.value_type))
        elif pa.types.is_null(column.type) and kinds and column.name in kinds:
            table = table.set_column(i, column.name, table.column(i).cast(_ARROW_TYPES[kinds[column.name]]))
    return table.replace_schema_metadata(None)


def write_source(frame: pd.DataFrame, path: Path, kinds: dict[str, str] | None = None) -> None:
    """Write one source as plain Parquet, replacing `path` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(_arrow(frame, kinds), tmp)
    os.replace(tmp, path)


def _nanoseconds(series: pd.Series) -> np.ndarray:
    """UTC epoch nanoseconds of a time column (naive times are taken as UTC)."""
    stamps = pd.to_datetime(series, utc=True).dt.as_unit("ns")
    return stamps.dt.tz_localize(None).to_numpy().astype("int64")


def _empty_engagement(keys: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        # Typed even when empty: Feast's DuckDB store cannot join on a column of Arrow type null.
        {LEAD_ID: pd.Series(dtype="string"), TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]")}
    )
    for key in keys:
        frame[key] = pd.Series(dtype="int32")
    frame[LAST_ACTIVITY_AT] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


def sources_dir(settings: Settings) -> Path:
    """The folder of the feature sources (Parquet), which Feast's FileSources name; found without importing Feast."""
    return settings.feature_repo_dir / SOURCES_DIR


def source_path(settings: Settings, view: str) -> Path:
    return sources_dir(settings) / f"{view}.parquet"

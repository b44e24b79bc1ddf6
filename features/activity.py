"""Recent activity: the online form of engagement, so windowed counts age at read time.

The offline `lead_engagement` rows hold counts at every change point (exact for training at any
as-of time). Online, a lead has one row: its events of the longest window as (type, second)
lists, the time of its last older event, and the ids of the API inbox events it holds.
`engagement_at` turns that row into the same counts and last-activity time `lead_engagement`
holds at any later time, so a 7-day count drops when its event turns 8 days old with nothing
rewritten; `merged` adds newly ingested events. Times follow `features.transform`: an event counts
from the first whole second at or after it (ceiling) until that second plus the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.partition import EventChunks, LeadChunk
from features.transform import LAST_ACTIVITY_AT, LEAD_ID, TIMESTAMP
from samepage.definitions import Definitions

ACTIVITY_SOURCE = "lead_activity"
TYPES = "recent_event_types"
SECONDS = "recent_event_seconds"
EARLIER = "earlier_activity_at"
INBOX_IDS = "inbox_event_ids"
ACTIVITY_FIELDS = (TYPES, SECONDS, EARLIER, INBOX_IDS)
_DAY = 86_400
SMALL_READ = 8  # leads; up to this many, plain Python beats numpy's per-call set-up (one lead: 0.05 vs 0.5 ms)
_NS = 1_000_000_000


@dataclass(frozen=True)
class Counter:
    """One stored engagement field: events of `types` within `window` seconds (channels: per channel)."""

    key: str
    types: frozenset[str]
    window: int
    channels: tuple[frozenset[str], ...] = ()


def counters(defs: Definitions) -> list[Counter]:
    """The stored engagement fields (`transform.engagement_keys`) as counters, in the same order."""
    by_channel: dict[str, set[str]] = {}
    for e in defs.event_types:
        by_channel.setdefault(e.channel, set()).add(e.key)
    out: list[Counter] = []
    for f in defs.features:
        window = int(f.window_days or 0) * _DAY
        if f.kind == "event_count":
            out.append(Counter(f.key, frozenset([str(f.event_type)]), window))
        elif f.kind == "distinct_channels":
            channels = tuple(frozenset(types) for _name, types in sorted(by_channel.items()))
            out.append(Counter(f.key, frozenset().union(*channels), window, channels))
    return out


def longest_window(defs: Definitions) -> int:
    """Seconds: events older than this never count again, whatever the feature."""
    return max((c.window for c in counters(defs)), default=0)


def ceil_seconds(times: pd.Series | Sequence[Any]) -> np.ndarray:
    """UTC epoch seconds, rounded up (an event counts from the first whole second at or after it)."""
    stamps = pd.to_datetime(pd.Series(times), utc=True).dt.as_unit("ns")
    ns = stamps.dt.tz_localize(None).to_numpy().astype("int64")
    return -((-ns) // _NS)


# -- building rows ----------------------------------------------------------------------------
def activity_rows(events: pd.DataFrame, defs: Definitions, now: pd.Timestamp) -> pd.DataFrame:
    """One row per lead with events, as of `now`: the `ACTIVITY_FIELDS` and `event_timestamp` = now.

    `events` holds lead_id, occurred_at, type and, for events from the API inbox, `inbox_id`.
    Events that left the longest window by `now` only leave their time in `EARLIER`.
    """
    ev = events.loc[events[LEAD_ID].notna() & events["occurred_at"].notna()]
    stamp = pd.Timestamp(now).tz_convert("UTC")
    if ev.empty:
        return _frame([], [], [], [], [], stamp)
    inbox = ev["inbox_id"] if "inbox_id" in ev.columns else pd.Series(np.nan, index=ev.index)
    frame = pd.DataFrame(
        {
            LEAD_ID: ev[LEAD_ID].astype("string").to_numpy(dtype=object),
            "second": ceil_seconds(ev["occurred_at"]),
            "type": ev["type"].astype("string").to_numpy(dtype=object),
            "inbox_id": pd.to_numeric(inbox).to_numpy(dtype="float64"),
        }
    ).sort_values([LEAD_ID, "second"], kind="stable")
    cutoff = int(stamp.value // _NS) - longest_window(defs)
    recent = frame["second"].to_numpy() > cutoff
    older = frame.loc[~recent].groupby(LEAD_ID, sort=False)["second"].max()
    kept = frame.loc[recent].groupby(LEAD_ID, sort=False)
    leads = pd.Index(frame[LEAD_ID].unique())
    types = kept["type"].agg(list).reindex(leads)
    seconds = kept["second"].agg(list).reindex(leads)
    ids = kept["inbox_id"].agg(lambda x: [int(i) for i in x if not np.isnan(i)]).reindex(leads)
    earlier = older.reindex(leads)
    return _frame(
        list(leads),
        [t if isinstance(t, list) else [] for t in types],
        [[int(x) for x in s] if isinstance(s, list) else [] for s in seconds],
        [None if pd.isna(e) else int(e) for e in earlier],
        [i if isinstance(i, list) else [] for i in ids],
        stamp,
    )


def activity_chunk(chunk: LeadChunk, events: EventChunks, defs: Definitions, now: pd.Timestamp) -> pa.Table:
    """`activity_table(activity_rows(...))` of one chunk of leads (`features.partition`), in Arrow
    without a Python object per event: the same rows, leads in lead id order within the chunk."""
    stamp = pd.Timestamp(now).tz_convert("UTC")
    if not len(chunk.leads):
        return activity_table(_frame([], [], [], [], [], stamp))
    present = np.unique(chunk.leads)
    names = events.lead_ids[present].to_numpy(dtype=object)
    by_name = np.argsort(names.astype(str), kind="stable")
    rank = np.empty(len(present), dtype="int64")
    rank[by_name] = np.arange(len(present))
    lead_rank = rank[np.searchsorted(present, chunk.leads)]
    base = int(events.first_second or 0)
    # One stable sort by (lead id, second): ties keep table order, as `activity_rows` does.
    order = np.argsort((lead_rank << 32) | (chunk.seconds - base), kind="stable")
    owner, seconds = lead_rank[order], chunk.seconds[order]
    recent = seconds > int(stamp.value // _NS) - longest_window(defs)
    n = len(present)
    offsets = pa.array(np.concatenate(([0], np.cumsum(np.bincount(owner[recent], minlength=n)))).astype("int32"))
    type_codes = chunk.types[order][recent]
    type_names = pa.array(events.type_names, type=pa.string())
    types = type_names.take(pa.array(type_codes.astype("int64"), mask=type_codes < 0))
    inbox = chunk.inbox_ids[order][recent]
    held = ~np.isnan(inbox)
    inbox_offsets = np.concatenate(([0], np.cumsum(np.bincount(owner[recent][held], minlength=n)))).astype("int32")
    earlier = np.full(n, -1, dtype="int64")
    np.maximum.at(earlier, owner[~recent], seconds[~recent] - base)  # base: the earliest event, so >= 0
    columns = {
        LEAD_ID: pa.array(names[by_name], type=pa.string()),
        TIMESTAMP: pa.array(np.full(n, stamp.value, dtype="int64"), type=pa.timestamp("ns", "UTC")),
        TYPES: pa.ListArray.from_arrays(offsets, types),
        SECONDS: pa.ListArray.from_arrays(offsets, pa.array(seconds[recent])),
        EARLIER: pa.array((earlier + base) * _NS, type=pa.timestamp("ns", "UTC"), mask=earlier < 0),
        INBOX_IDS: pa.ListArray.from_arrays(pa.array(inbox_offsets), pa.array(inbox[held].astype("int64"))),
    }
    return pa.Table.from_pydict(columns, schema=ARROW_SCHEMA)


def _frame(
    leads: list[str],
    types: list[list[str]],
    seconds: list[list[int]],
    earlier: list[int | None],
    ids: list[list[int]],
    now: pd.Timestamp,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            LEAD_ID: pd.Series(leads, dtype=object),
            TIMESTAMP: pd.Series([now] * len(leads), dtype="datetime64[ns, UTC]"),
            TYPES: pd.Series(types, dtype=object),
            SECONDS: pd.Series(seconds, dtype=object),
            EARLIER: epoch_times(earlier),
            INBOX_IDS: pd.Series(ids, dtype=object),
        }
    )


ARROW_SCHEMA = pa.schema(
    [
        (LEAD_ID, pa.string()),
        (TIMESTAMP, pa.timestamp("ns", "UTC")),
        (TYPES, pa.list_(pa.string())),
        (SECONDS, pa.list_(pa.int64())),
        (EARLIER, pa.timestamp("ns", "UTC")),
        (INBOX_IDS, pa.list_(pa.int64())),
    ]
)


def activity_table(frame: pd.DataFrame) -> pa.Table:
    """`activity_rows` as the Arrow table of the `lead_activity` source (typed even when empty)."""
    return pa.Table.from_pandas(frame[ARROW_SCHEMA.names], schema=ARROW_SCHEMA, preserve_index=False)


def epoch_times(seconds: Sequence[int | None]) -> pd.Series:
    """Whole epoch seconds (None: missing) as UTC times, in integer arithmetic (no float rounding)."""
    return pd.to_datetime(pd.Series(list(seconds), dtype="Int64"), unit="s", utc=True)


def merged(row: dict[str, Any] | None, new_types: Sequence[str], new_seconds: Sequence[int], cutoff: int) -> dict[str, Any]:
    """A lead's TYPES, SECONDS and EARLIER with new events (types, ceiling seconds) added; events at or
    before `cutoff` (now minus the longest window) leave the lists and only keep EARLIER up to date."""
    types = [*(row.get(TYPES) or [] if row else []), *new_types]
    seconds = [*(int(x) for x in (row.get(SECONDS) or [] if row else [])), *(int(x) for x in new_seconds)]
    earlier = _epoch(row.get(EARLIER)) if row else None
    order = sorted(range(len(seconds)), key=seconds.__getitem__)
    kept_types, kept_seconds = [], []
    for i in order:
        if seconds[i] > cutoff:
            kept_types.append(types[i])
            kept_seconds.append(seconds[i])
        elif earlier is None or seconds[i] > earlier:
            earlier = seconds[i]
    return {TYPES: kept_types, SECONDS: kept_seconds, EARLIER: earlier}


def _epoch(value: Any) -> int | None:
    """Epoch seconds of a stored time (datetime, numpy datetime64, or None/NaT)."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        return None
    return int(stamp.tz_localize("UTC").value // _NS) if stamp.tzinfo is None else int(stamp.value // _NS)


# -- reading ----------------------------------------------------------------------------------
def engagement_at(
    types: Sequence[Sequence[str] | None],
    seconds: Sequence[Sequence[int] | None],
    earlier: Sequence[Any] | np.ndarray,
    as_of: np.ndarray,
    defs: Definitions,
    counted: Sequence[Counter] | None = None,
) -> dict[str, Any]:
    """The stored engagement fields as `lead_engagement` would hold them at `as_of` (epoch seconds).

    Per lead: each counter's count (NaN where the lead has no activity row, as offline), and
    `last_activity_at` as datetime64[s] (NaT when none). Rows are the same leads as the inputs.
    `counted`: `counters(defs)` made once by a caller that reads often (the online read).
    """
    counted = list(counters(defs) if counted is None else counted)
    n = len(types)
    types = [t if isinstance(t, (list, tuple, np.ndarray)) else None for t in types]  # an all-missing column is NaNs
    seconds = [s if isinstance(s, (list, tuple, np.ndarray)) else None for s in seconds]
    if n <= SMALL_READ:
        return _engagement_small(types, seconds, earlier, as_of, counted)
    found = np.array([t is not None for t in types], dtype=bool)
    lengths = np.array([len(t) if t is not None else 0 for t in types], dtype="int64")
    codes = type_codes(counted)
    flat_types = np.array([codes.get(x, -1) for t in types if t is not None for x in t], dtype="int64")
    flat_seconds = np.array([int(x) for s in seconds if s is not None for x in s], dtype="float64")
    owner = np.repeat(np.arange(n), lengths)
    return engagement_of_events(flat_types, flat_seconds, owner, found, _epoch_seconds(earlier), as_of, counted, codes)


def type_codes(counted: Sequence[Counter]) -> dict[str, int]:
    """Event types as small integer codes (one dict look-up per event), so each counter's test is an integer isin."""
    return {name: k for k, name in enumerate(sorted({t for c in counted for t in c.types}))}


def engagement_of_events(
    flat_types: np.ndarray,
    flat_seconds: np.ndarray,
    owner: np.ndarray,
    found: np.ndarray,
    earlier_seconds: np.ndarray,
    as_of: np.ndarray,
    counted: Sequence[Counter],
    codes: dict[str, int],
) -> dict[str, Any]:
    """`engagement_at` from every lead's events flattened: their `codes` (`type_codes(counted)`; -1: a type no
    counter counts), seconds and owning lead (positions of `found`), and each lead's earlier activity in
    epoch seconds (NaN: none)."""
    n = len(found)
    now = np.asarray(as_of, dtype="float64")[owner]
    out: dict[str, Any] = {}
    for c in counted:
        live = (flat_seconds <= now) & (now < flat_seconds + c.window)
        if c.channels:
            total = np.zeros(n, dtype="float64")
            for channel in c.channels:
                hit = live & np.isin(flat_types, [codes[t] for t in channel])
                total += np.bincount(owner[hit], minlength=n) > 0
        else:
            hit = live & np.isin(flat_types, [codes[t] for t in c.types])
            total = np.bincount(owner[hit], minlength=n).astype("float64")
        out[c.key] = np.where(found, total, np.nan)
    last = np.full(n, np.nan)
    happened = flat_seconds <= now
    np.fmax.at(last, owner[happened], flat_seconds[happened])
    last = np.fmax(last, earlier_seconds)
    stamps = np.nan_to_num(last).astype("int64").astype("datetime64[s]")
    out[LAST_ACTIVITY_AT] = np.where(np.isnan(last), np.datetime64("NaT", "s"), stamps)
    return out


def _epoch_seconds(earlier: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Epoch seconds of stored times as float64 (NaN: none); the online read's datetime64[s] array at once."""
    if isinstance(earlier, np.ndarray) and earlier.dtype == np.dtype("datetime64[s]"):
        return np.where(np.isnat(earlier), np.nan, earlier.astype("int64").astype("float64"))
    return np.array([np.nan if (e := _epoch(v)) is None else float(e) for v in earlier], dtype="float64")


def _engagement_small(
    types: list[Any],
    seconds: list[Any],
    earlier: Sequence[Any] | np.ndarray,
    as_of: np.ndarray,
    found_counters: list[Counter],
) -> dict[str, Any]:
    """`engagement_at` for a few leads in plain Python: the same float64 arithmetic, the same results."""
    n = len(types)
    out: dict[str, Any] = {c.key: np.full(n, np.nan) for c in found_counters}
    last = np.full(n, np.nan)
    for i in range(n):
        now = float(as_of[i])
        before = _epoch(earlier[i])
        latest = math.nan if before is None else float(before)
        if types[i] is None:
            last[i] = latest
            continue
        events = [(str(t), float(int(x))) for t, x in zip(types[i], seconds[i] or [], strict=False)]
        for _t, x in events:
            if x <= now and not (latest >= x):  # fmax: NaN loses
                latest = x
        last[i] = latest
        for c in found_counters:
            live = [t for t, x in events if x <= now and now < x + c.window]
            if c.channels:
                out[c.key][i] = float(sum(1 for channel in c.channels if any(t in channel for t in live)))
            else:
                out[c.key][i] = float(sum(1 for t in live if t in c.types))
    stamps = np.nan_to_num(last).astype("int64").astype("datetime64[s]")
    out[LAST_ACTIVITY_AT] = np.where(np.isnan(last), np.datetime64("NaT", "s"), stamps)
    return out

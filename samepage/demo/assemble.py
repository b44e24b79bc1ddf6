"""From draws to canonical tables: blocks of leads, the frames, and what `samepage demo` writes.

Deterministic per (seed, chunk size), with no wall clock: block k of a seed draws from its own
generator, so blocks can be produced one at a time with bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel

from samepage import outcomes
from samepage.definitions import Definitions
from samepage.demo.params import CHUNK_LEADS, DEFAULT_END, Vocab, type_names
from samepage.demo.simulate import draw_events, draw_leads, draw_stages
from samepage.settings import Settings
from samepage.tables import CanonicalTables, write_tables


class DemoSummary(BaseModel):
    """What `write_demo` wrote: counts, time span and the share of leads that reached the label."""

    seed: int
    leads: int
    events: int
    stages: int
    created_from: datetime
    created_to: datetime
    end: datetime
    closed_windows: int  # leads with a closed label window, less those already past the target
    sql_rate: float  # label-positive share of the leads training would label at `end` (closed windows)

    def __str__(self) -> str:
        return (
            f"{self.leads:,} leads, {self.events:,} events, {self.stages:,} stage changes; "
            f"created {self.created_from:%Y-%m-%d} to {self.created_to:%Y-%m-%d}; "
            f"SQL rate {self.sql_rate:.1%} of {self.closed_windows:,} leads with a closed label window (seed {self.seed})"
        )


def generate_demo(
    defs: Definitions,
    n_leads: int = 20_000,
    seed: int = 0,
    end: pd.Timestamp = DEFAULT_END,
    on_progress: Callable[[int, int], None] | None = None,
    chunk_leads: int = CHUNK_LEADS,
) -> CanonicalTables:
    """The same data as `iter_demo_chunks`, in one set of canonical tables.

    Blocks are kept as compact arrays and turned into frames once, so memory peaks near the size
    of the result. `on_progress(done, total)` is called after each block (for a progress bar).
    """
    vocab = Vocab.from_definitions(defs)
    blocks = []
    for block in _blocks(defs, vocab, n_leads, seed, end, chunk_leads):
        blocks.append(block)
        if on_progress is not None:
            on_progress(block.offset + block.n, n_leads)
    return _frames(blocks, vocab, _id_width(n_leads))


def iter_demo_chunks(
    defs: Definitions,
    n_leads: int = 20_000,
    seed: int = 0,
    end: pd.Timestamp = DEFAULT_END,
    chunk_leads: int = CHUNK_LEADS,
) -> Iterator[CanonicalTables]:
    """Canonical tables for successive blocks of `chunk_leads` leads (bounded memory per block).

    The data depend on (seed, chunk_leads): keep the default for reproducible demo sets.
    """
    vocab = Vocab.from_definitions(defs)
    for block in _blocks(defs, vocab, n_leads, seed, end, chunk_leads):
        yield _frames([block], vocab, _id_width(n_leads))


def _blocks(
    defs: Definitions, vocab: Vocab, n_leads: int, seed: int, end: pd.Timestamp, chunk_leads: int
) -> Iterator[_Block]:
    if n_leads < 0:
        raise ValueError(f"n_leads must be at least 0, got {n_leads}")
    if chunk_leads < 1:
        raise ValueError(f"chunk_leads must be at least 1, got {chunk_leads}")
    end = pd.Timestamp(end)
    if end.tzinfo is None:
        raise ValueError(f"end must be a UTC timestamp with a time zone, got {end}")
    for offset in range(0, n_leads, chunk_leads):
        rng = np.random.default_rng([seed, offset // chunk_leads])
        yield _block(rng, vocab, defs, min(chunk_leads, n_leads - offset), offset, end)


def _id_width(n_leads: int) -> int:
    return max(6, len(str(n_leads)))


def write_demo(
    settings: Settings,
    defs: Definitions,
    n_leads: int = 20_000,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
    end: pd.Timestamp = DEFAULT_END,
) -> DemoSummary:
    """Replace the workspace's canonical data with a fresh demo set ending at `end`; returns what was written."""
    tables = generate_demo(defs, n_leads=n_leads, seed=seed, on_progress=on_progress, end=end)
    write_tables(settings.data_dir, tables)
    return summarize(defs, tables, seed=seed, end=end)


def summarize(defs: Definitions, tables: CanonicalTables, seed: int, end: pd.Timestamp) -> DemoSummary:
    """Counts, creation span and label rate of a demo set (what `samepage demo` prints)."""
    closed, rate = _label_rate(defs, tables, end)
    created = tables.leads["created_at"]
    return DemoSummary(
        seed=seed,
        leads=len(tables.leads),
        events=len(tables.events),
        stages=len(tables.stages),
        created_from=created.min() if len(created) else end,
        created_to=created.max() if len(created) else end,
        end=end,
        closed_windows=closed,
        sql_rate=rate,
    )


def _label_rate(defs: Definitions, tables: CanonicalTables, end: pd.Timestamp) -> tuple[int, float]:
    """(leads training would label at `end`, share of them positive), by `samepage.outcomes`' rule.

    Like training's labels: only closed windows count, and a lead already past the target before
    its as-of time (nothing left to predict) is left out rather than counted as a negative.
    """
    created = tables.leads.set_index("lead_id")["created_at"]
    stages = tables.stages.assign(lead_id=tables.stages["lead_id"].astype(str))
    rule = outcomes.outcomes(defs, outcomes.as_of_times(defs, created, stages), stages, end)
    labelled = rule.loc[rule["closed"] & (rule["reached"] | ~rule["reached_before"])]
    return len(labelled), (float(labelled["reached"].mean()) if len(labelled) else 0.0)


# -- one chunk -----------------------------------------------------------------------------------



@dataclass(frozen=True)
class _Block:
    """One block of leads as compact arrays (codes, epoch seconds), rows already in final order."""

    offset: int
    n: int
    created: np.ndarray
    attrs: dict[str, np.ndarray]
    events: tuple[np.ndarray, np.ndarray, np.ndarray]  # lead index (global), seconds, type code
    stages: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # lead, stage code, seconds, reason code


def _block(rng: np.random.Generator, v: Vocab, defs: Definitions, n: int, offset: int, end: pd.Timestamp) -> _Block:
    """The three draws for one block, kept to what happened by `end` (in known event types), by lead then time."""
    end_s = end.value / 1e9
    lead = draw_leads(rng, v, n, end)
    outcome = draw_stages(rng, v, defs, lead)
    ev_lead, ev_time, ev_type = draw_events(rng, v, lead, outcome, end_s)

    known = np.isin(type_names(v), v.event_types)  # per type code, not per event
    keep = np.flatnonzero(known[ev_type] & (ev_time <= end_s))
    keep = keep[_by_lead_then_time(ev_lead[keep], ev_time[keep])]
    events = (ev_lead[keep] + offset, np.floor(ev_time[keep]), ev_type[keep].astype(np.int16))
    keep = np.flatnonzero(outcome.when <= end_s)
    keep = keep[_by_lead_then_time(outcome.lead[keep], outcome.when[keep])]
    stages = (outcome.lead[keep] + offset, outcome.stage[keep], np.floor(outcome.when[keep]), outcome.reason[keep])
    return _Block(offset, n, lead.created, lead.attrs, events, stages)


def _frames(blocks: list[_Block], v: Vocab, width: int) -> CanonicalTables:
    """Canonical frames (dtypes of `samepage.tables`) from one or more blocks, in order."""
    first = blocks[0].offset if blocks else 0
    n = sum(b.n for b in blocks)
    ids = np.empty(0, dtype=object)
    if n:
        ids = np.char.add("L", np.char.zfill(np.arange(first, first + n).astype(str), width)).astype(object)

    def cat(get: Callable[[_Block], np.ndarray], dtype: str) -> np.ndarray:
        return np.concatenate([get(b) for b in blocks]) if blocks else np.empty(0, dtype=dtype)

    attrs = {k: np.concatenate([b.attrs[k] for b in blocks]) for k in (blocks[0].attrs if blocks else {})}
    leads = _leads_frame(attrs, n)
    leads.insert(0, "lead_id", _strings(ids))
    leads.insert(1, "created_at", _to_utc(cat(lambda b: b.created, "float64")))

    type_keys = np.array(type_names(v), dtype=object)
    ev_lead = cat(lambda b: b.events[0], "int64") - first
    events = pd.DataFrame(
        {
            "lead_id": _strings(ids[ev_lead]),
            "occurred_at": _to_utc(cat(lambda b: b.events[1], "float64")),
            "type": _strings(type_keys[cat(lambda b: b.events[2], "int16")]),
            "value": np.full(len(ev_lead), np.nan),
        },
        copy=False,  # the arrays are fresh: a copy would double the peak at scale
    )
    del ev_lead
    reasons = np.array(v.reasons + [None], dtype=object)
    stages = pd.DataFrame(
        {
            "lead_id": _strings(ids[cat(lambda b: b.stages[0], "int64") - first]),
            "stage": _strings(np.array(v.stages, dtype=object)[cat(lambda b: b.stages[1], "int64")]),
            "occurred_at": _to_utc(cat(lambda b: b.stages[2], "float64")),
            "reason": _strings(reasons[cat(lambda b: b.stages[3], "int64")]),
        },
        copy=False,
    )
    return CanonicalTables(leads=leads, events=events, stages=stages)


def _by_lead_then_time(lead: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Row order by lead, then whole second (one int64 key sorts ~3x faster than lexsort)."""
    if not len(lead):
        return np.empty(0, dtype=np.int64)
    whole = np.floor(seconds)
    key = (lead.astype(np.int64) << 32) | (whole - whole.min()).astype(np.int64)  # a chunk spans < 136 years
    return np.argsort(key, kind="stable")


def _to_utc(seconds: np.ndarray) -> pd.DatetimeIndex:
    """Epoch seconds (whole seconds, like a CRM export) as UTC timestamps, with one temporary."""
    ns = np.floor(seconds).astype(np.int64)
    ns *= 1_000_000_000
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")


def _strings(values: np.ndarray) -> pd.arrays.StringArray:
    """An object array of str/None as a pandas string array without another copy."""
    return pd.arrays.StringArray(np.asarray(values, dtype=object))


def _leads_frame(attrs: dict[str, np.ndarray], n: int) -> pd.DataFrame:
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    for col in ("source", "industry", "country", "job_title", "seniority", "department"):
        frame[col] = _strings(attrs.get(col, np.full(n, None, dtype=object)))
    for col in ("employees", "annual_revenue"):
        frame[col] = np.asarray(attrs.get(col, np.full(n, np.nan)), dtype="float64")
    return frame[["source", "industry", "employees", "annual_revenue", "country", "job_title", "seniority", "department"]]

"""Synthetic B2B demo data: leads, engagement events and stage history in the canonical shape.

The generator draws a hidden fit (from the definitions' ICP) and a hidden intent per lead; intent
drives engagement before and after the lead raises a hand, and fit + intent + noise decide how far
sales moves it. So the definitions' features carry real but imperfect signal about the label.
Deterministic per seed (no wall clock), vectorised, and generated in fixed-size chunks of leads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel

from samepage.definitions import Definitions
from samepage.settings import Settings
from samepage.tables import CanonicalTables, write_tables

DEFAULT_END = pd.Timestamp("2026-11-01T00:00:00Z")
CHUNK_LEADS = 50_000  # the default block size; a seed's data depend on it, so it stays fixed
CREATION_SPAN_DAYS = 480  # ~16 months: older leads have closed label windows, newer ones are open
POST_LEAD_DAYS = 365  # engagement is tracked for about a year after the hand-raise
DAY = 86_400.0

# Vocabulary outside the ICP; the ICP values themselves come from the definitions.
OTHER_INDUSTRIES = ["Education", "Government", "Non-profit", "Media", "Consulting", "Telecommunications"]
OTHER_COUNTRIES = ["India", "Brazil", "Australia", "Spain", "Japan", "Singapore", "Mexico", "South Africa"]
OTHER_SENIORITIES = ["Manager", "Individual Contributor"]
OTHER_DEPARTMENTS = ["Finance", "HR", "Engineering", "Product", "Customer Success"]
SOURCES = {  # source: (share of leads, intent shift)
    "Organic Search": (0.22, 0.1),
    "Paid Search": (0.16, 0.0),
    "Webinar": (0.12, 0.2),
    "Content Syndication": (0.14, -0.5),
    "Referral": (0.06, 0.6),
    "Events": (0.10, 0.1),
    "Outbound": (0.14, -0.3),
    "Partner": (0.06, 0.3),
}
# Hand-raise event at creation per source (None: a badge scan or a referral, no tracked event).
HAND_RAISE = {
    "Organic Search": "content_download",
    "Paid Search": "content_download",
    "Webinar": "webinar_registration",
    "Content Syndication": "content_download",
    "Referral": None,
    "Events": None,
    "Outbound": "email_click",
    "Partner": None,
}
# Post-lead engagement: type -> (events per day at intent 0, intent slope, decay days or None).
POST_RATES: dict[str, tuple[float, float, float | None]] = {
    "page_view": (0.07, 0.5, 120.0),
    "pricing_page_view": (0.006, 0.9, 90.0),
    "email_open": (0.05, 0.3, None),
    "content_download": (0.004, 0.4, 150.0),
    "webinar_registration": (0.003, 0.5, 200.0),
    "demo_request": (0.0006, 1.0, 90.0),
    "trial_request": (0.0004, 0.9, 90.0),
}
GENERIC_RATE = (0.005, 0.3, 120.0)  # an event type the definitions add that this model does not know
DISQUALIFY_WEIGHTS = {"no_budget": 3.0, "bad_timing": 3.0, "not_icp": 2.0, "unreachable": 3.0, "duplicate": 0.6}
PROFILE_REASONS = frozenset({"student", "competitor"})  # given only when the profile says so
AFTER_SQL_REASONS = frozenset({"no_budget", "bad_timing"})  # why a qualified lead still drops out
COLD_REASONS = frozenset({"not_icp", "unreachable", "duplicate"})  # clean-up of leads never worked
LOST_WEIGHTS = {"price": 1.0, "competitor_won": 1.2, "no_decision": 1.5}


class DemoSummary(BaseModel):
    """What `write_demo` wrote: counts, time span and the share of leads that reached the label."""

    seed: int
    leads: int
    events: int
    stages: int
    created_from: datetime
    created_to: datetime
    end: datetime
    closed_windows: int
    sql_rate: float  # label-positive share among leads whose label window closed before `end`

    def __str__(self) -> str:
        return (
            f"{self.leads:,} leads, {self.events:,} events, {self.stages:,} stage changes; "
            f"created {self.created_from:%Y-%m-%d} to {self.created_to:%Y-%m-%d}; "
            f"SQL rate {self.sql_rate:.1%} of {self.closed_windows:,} leads with a closed label window (seed {self.seed})"
        )


@dataclass(frozen=True)
class _Vocab:
    """The definitions' values the generator draws from, plus the out-of-ICP rest."""

    icp_industries: list[str]
    industries: list[str]
    countries: list[str]
    icp_countries: list[str]
    seniorities: list[str]
    icp_seniorities: list[str]
    departments: list[str]
    icp_departments: list[str]
    emp_min: float
    emp_max: float
    student: str
    competitor: str
    event_types: list[str]
    stages: list[str]
    reasons: list[str]

    @classmethod
    def from_definitions(cls, defs: Definitions) -> _Vocab:
        icp = defs.icp
        student = _excluded_value(defs, "seniority", "Student")
        competitor = _excluded_value(defs, "industry", "Competitor")
        stage_keys = [s.key for s in defs.stages]
        reasons = sorted({r.key for s in defs.stages for r in s.reasons})
        return cls(
            icp_industries=list(icp.industries),
            industries=_union(icp.industries, OTHER_INDUSTRIES),
            countries=_union(icp.countries, OTHER_COUNTRIES),
            icp_countries=list(icp.countries),
            seniorities=_union(icp.personas.seniorities, OTHER_SENIORITIES),
            icp_seniorities=list(icp.personas.seniorities),
            departments=_union(icp.personas.departments, OTHER_DEPARTMENTS),
            icp_departments=list(icp.personas.departments),
            emp_min=icp.employees.min if icp.employees.min is not None else 50.0,
            emp_max=icp.employees.max if icp.employees.max is not None else 5000.0,
            student=student,
            competitor=competitor,
            event_types=[e.key for e in defs.event_types],
            stages=stage_keys,
            reasons=reasons,
        )


def _excluded_value(defs: Definitions, field: str, fallback: str) -> str:
    """The value an MQL criterion excludes for `field` (e.g. seniority Student), else `fallback`."""
    for c in defs.mql.criteria:
        if c.field == field and c.not_in:
            return str(c.not_in[0])
    return fallback


def _union(first: list[str], rest: list[str]) -> list[str]:
    return list(first) + [v for v in rest if v not in first]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(rng: np.random.Generator, values: list[str], n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """n draws of indices into `values`."""
    p = None if weights is None else weights / weights.sum()
    return rng.choice(len(values), size=n, p=p)


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
    vocab = _Vocab.from_definitions(defs)
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
    vocab = _Vocab.from_definitions(defs)
    for block in _blocks(defs, vocab, n_leads, seed, end, chunk_leads):
        yield _frames([block], vocab, _id_width(n_leads))


def _blocks(
    defs: Definitions, vocab: _Vocab, n_leads: int, seed: int, end: pd.Timestamp, chunk_leads: int
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
    """Share of leads (with a closed window) reaching the label stage or later within the window."""
    label = defs.label
    leads, stages = tables.leads, tables.stages
    as_of = leads.set_index("lead_id")["created_at"]
    if label.as_of_stage is not None:
        first = stages[stages["stage"] == label.as_of_stage].groupby("lead_id")["occurred_at"].min()
        as_of = first.reindex(as_of.index).fillna(as_of)
    window = pd.Timedelta(days=label.window_days)
    closed = as_of[as_of + window <= end]
    hits = stages[stages["stage"].isin(defs.stages_at_or_after(label.target_stage))]
    hits = hits[hits["lead_id"].isin(closed.index)]
    start = closed.reindex(hits["lead_id"]).to_numpy()
    ok = (hits["occurred_at"].to_numpy() >= start) & (hits["occurred_at"].to_numpy() <= start + window)
    positives = hits.loc[ok, "lead_id"].nunique()
    return len(closed), (positives / len(closed) if len(closed) else 0.0)


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


def _block(rng: np.random.Generator, v: _Vocab, defs: Definitions, n: int, offset: int, end: pd.Timestamp) -> _Block:
    end_s = end.value / 1e9
    lead = _draw_leads(rng, v, n, end)
    outcome = _draw_stages(rng, v, defs, lead)
    ev_lead, ev_time, ev_type = _draw_events(rng, v, lead, outcome, end_s)

    known = np.isin(_type_names(v), v.event_types)  # per type code, not per event
    keep = np.flatnonzero(known[ev_type] & (ev_time <= end_s))
    keep = keep[_by_lead_then_time(ev_lead[keep], ev_time[keep])]
    events = (ev_lead[keep] + offset, np.floor(ev_time[keep]), ev_type[keep].astype(np.int16))
    keep = np.flatnonzero(outcome.when <= end_s)
    keep = keep[_by_lead_then_time(outcome.lead[keep], outcome.when[keep])]
    stages = (outcome.lead[keep] + offset, outcome.stage[keep], np.floor(outcome.when[keep]), outcome.reason[keep])
    return _Block(offset, n, lead.created, lead.attrs, events, stages)


def _frames(blocks: list[_Block], v: _Vocab, width: int) -> CanonicalTables:
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

    type_names = np.array(_type_names(v), dtype=object)
    ev_lead = cat(lambda b: b.events[0], "int64") - first
    events = pd.DataFrame(
        {
            "lead_id": _strings(ids[ev_lead]),
            "occurred_at": _to_utc(cat(lambda b: b.events[1], "float64")),
            "type": _strings(type_names[cat(lambda b: b.events[2], "int16")]),
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


# -- the draws -----------------------------------------------------------------------------------

DERIVED_TYPES = ["email_click", "webinar_attended", "unsubscribe"]


@dataclass(frozen=True)
class _Leads:
    """One chunk of leads: creation times (epoch seconds), attributes and the hidden drivers."""

    created: np.ndarray
    attrs: dict[str, np.ndarray]
    source: np.ndarray  # index into SOURCES
    fit: np.ndarray  # ICP fit, hidden
    intent: np.ndarray  # buying intent, hidden
    demo: np.ndarray  # asked for a demo at the hand-raise
    trial: np.ndarray  # asked for a trial at the hand-raise
    student: np.ndarray
    competitor: np.ndarray
    decider: np.ndarray  # true seniority is an ICP persona (before CRM gaps)
    browser: np.ndarray  # a heavy reader with little buying intent


def _type_names(v: _Vocab) -> list[str]:
    """Event type codes: the definitions' types plus the ones the behaviour model knows."""
    return _union(v.event_types, list(POST_RATES) + DERIVED_TYPES)


def _draw_leads(rng: np.random.Generator, v: _Vocab, n: int, end: pd.Timestamp) -> _Leads:
    """Creation times, attributes (with CRM gaps) and the hidden fit and intent."""
    first_day = end.normalize() - pd.Timedelta(days=CREATION_SPAN_DAYS)
    days = pd.date_range(first_day, periods=CREATION_SPAN_DAYS, freq="D")
    weights = (1.0 + 0.6 * np.arange(CREATION_SPAN_DAYS) / CREATION_SPAN_DAYS) * np.where(days.dayofweek >= 5, 0.3, 1.0)
    day = rng.choice(CREATION_SPAN_DAYS, size=n, p=weights / weights.sum())
    hour = np.clip(rng.normal(14.0, 3.5, n), 0.0, 23.99)
    created = np.sort(first_day.value / 1e9 + day * DAY + hour * 3600.0)
    created = np.minimum(created, end.value / 1e9 - 3600.0)

    src_names = list(SOURCES)
    source = _pick(rng, src_names, n, np.array([SOURCES[s][0] for s in src_names]))
    student = rng.random(n) < 0.04
    competitor = ~student & (rng.random(n) < 0.025)

    ind_w = _shares(np.ones(len(v.icp_industries)), np.ones(len(v.industries) - len(v.icp_industries)), 0.6)
    industry = np.array(v.industries, dtype=object)[_pick(rng, v.industries, n, ind_w)]
    if "Education" in v.industries:
        industry[student & (rng.random(n) < 0.7)] = "Education"
    industry[competitor] = v.competitor
    icp_industry = np.isin(industry, v.icp_industries)

    employees = np.clip(np.round(np.exp(rng.normal(np.log(300.0), 1.6, n))), 1, 250_000)
    icp_employees = (employees >= v.emp_min) & (employees <= v.emp_max)
    revenue = np.round(employees * np.exp(rng.normal(np.log(180_000.0), 0.6, n)), -3)

    n_icp_c = len(v.icp_countries)
    c_w = _shares(0.6 ** np.arange(n_icp_c), np.ones(len(v.countries) - n_icp_c), 0.7)  # the first ICP country leads
    country = np.array(v.countries, dtype=object)[_pick(rng, v.countries, n, c_w)]
    icp_country = np.isin(country, v.icp_countries)

    seniors = [s for s in v.seniorities if s != v.student]
    n_icp_s = len([s for s in seniors if s in v.icp_seniorities])
    s_w = _shares(1.7 ** np.arange(n_icp_s), np.ones(len(seniors) - n_icp_s), 0.34)  # few at the top
    seniority = np.array(seniors, dtype=object)[_pick(rng, seniors, n, s_w)]
    seniority[student] = v.student
    icp_seniority = np.isin(seniority, v.icp_seniorities)
    d_w = _shares(np.ones(len(v.icp_departments)), np.ones(len(v.departments) - len(v.icp_departments)), 0.65)
    dept_idx = _pick(rng, v.departments, n, d_w)
    department = np.array(v.departments, dtype=object)[dept_idx]
    icp_department = np.isin(department, v.icp_departments)
    title = _job_titles(seniority, department, v)

    # Fit is not a sum of checkboxes: an ICP industry counts for more in an ICP country, and
    # buying peaks at mid-sized companies inside the employee range.
    sweet_spot = np.exp(-((np.log10(employees) - np.log10(np.sqrt(max(v.emp_min, 1.0) * max(v.emp_max, 1.0)))) ** 2) / 0.4)
    fit = (
        0.3 * icp_industry + 0.9 * icp_industry * icp_country + 0.2 * icp_employees + 1.0 * sweet_spot
        + 0.2 * icp_country + 0.8 * icp_seniority + 0.3 * icp_department
    )  # fmt: skip
    browser = ~student & (rng.random(n) < 0.12)  # reads everything, buys nothing
    shift = np.array([SOURCES[s][1] for s in src_names])[source]
    intent = rng.normal(0.0, 1.0, n) + shift + 0.25 * (fit - 1.6)
    demo = rng.random(n) < _sigmoid(-2.4 + 1.1 * intent + 0.3 * (fit - 1.6))
    trial = ~demo & (rng.random(n) < _sigmoid(-3.2 + 0.9 * intent))

    department[student & (rng.random(n) < 0.8)] = None
    attrs = {
        "source": _blank(rng, np.array(src_names, dtype=object)[source], 0.01),
        "industry": _blank(rng, industry, 0.04),
        "employees": np.where(rng.random(n) < 0.08, np.nan, employees),
        "annual_revenue": np.where(rng.random(n) < 0.15, np.nan, revenue),
        "country": _blank(rng, country, 0.03),
        "job_title": _blank(rng, title, 0.05),
        "seniority": _blank(rng, seniority, 0.06),
        "department": _blank(rng, department, 0.07),
    }
    return _Leads(created, attrs, source, fit, intent, demo, trial, student, competitor, icp_seniority, browser)


def _shares(inside: np.ndarray, outside: np.ndarray, share_inside: float) -> np.ndarray:
    """Weights giving the ICP values `share_inside` of the draws (the rest to the others)."""
    if not len(inside) or not len(outside):
        return np.concatenate([inside, outside]).astype(float)
    return np.concatenate([share_inside * inside / inside.sum(), (1 - share_inside) * outside / outside.sum()])


def _blank(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    """A CRM never has every field: blank out `share` of the values."""
    out = values.astype(object)
    out[rng.random(len(out)) < share] = None
    return out


def _job_titles(seniority: np.ndarray, department: np.ndarray, v: _Vocab) -> np.ndarray:
    """Job titles from seniority x department (a lookup over the vocabulary, not per lead)."""
    chief = {"Marketing": "Marketing", "Sales": "Revenue", "Operations": "Operating", "IT": "Information",
             "Finance": "Financial", "HR": "People", "Engineering": "Technology"}  # fmt: skip
    patterns = {"C-level": lambda d: f"Chief {chief.get(d, d)} Officer", "VP": lambda d: f"VP {d}",
                "Director": lambda d: f"Director of {d}", "Manager": lambda d: f"{d} Manager",
                "Individual Contributor": lambda d: f"{d} Specialist"}  # fmt: skip
    all_sen = _union(v.seniorities, [v.student])
    table = np.array(
        [s if s == v.student else patterns.get(s, lambda d, s=s: f"{s}, {d}")(d) for s in all_sen for d in v.departments],
        dtype=object,
    )
    s_code = pd.Categorical(seniority, categories=all_sen).codes
    d_code = pd.Categorical(department, categories=v.departments).codes
    return table[s_code * len(v.departments) + d_code]


class _Rows:
    """Collects stage rows (lead index, stage code, time, reason code) from vectorised steps."""

    def __init__(self, v: _Vocab) -> None:
        self.v = v
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, who: np.ndarray, key: str, when: np.ndarray, reason: np.ndarray | None = None) -> None:
        if key not in self.v.stages or not who.any():
            return
        idx = np.flatnonzero(who)
        code = np.full(len(idx), self.v.stages.index(key))
        why = np.full(len(idx), len(self.v.reasons)) if reason is None else reason[idx]
        self.parts.append((idx, code, when[idx], why))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.parts:
            return np.empty(0, int), np.empty(0, int), np.empty(0), np.empty(0, int)
        return tuple(np.concatenate(c) for c in zip(*self.parts, strict=True))  # type: ignore[return-value]


def _reason_codes(
    rng: np.random.Generator,
    v: _Vocab,
    defs: Definitions,
    stage: str,
    n: int,
    weights: dict[str, float],
    skip: frozenset[str] = frozenset(),
    only: frozenset[str] | None = None,
) -> np.ndarray:
    """A reason per lead from the stage's reasons in the definitions (keys `weights` lacks weigh 1)."""
    every = [r.key for r in defs.stage(stage).reasons] if stage in v.stages else []
    keys = [k for k in every if k not in skip and (only is None or k in only)]
    keys = keys or every  # a required reason is never left blank
    if not keys:
        return np.full(n, len(v.reasons))
    w = np.array([weights.get(k, 1.0) for k in keys])
    return np.array([v.reasons.index(k) for k in keys])[_pick(rng, keys, n, w)]


def _reason_code(v: _Vocab, key: str, n: int) -> np.ndarray:
    return np.full(n, v.reasons.index(key) if key in v.reasons else len(v.reasons))


def _lognormal_days(rng: np.random.Generator, median_days: float, sigma: float, n: int) -> np.ndarray:
    return np.exp(rng.normal(np.log(median_days), sigma, n)) * DAY


@dataclass(frozen=True)
class _Outcome:
    """Stage rows (lead index, stage code, time, reason code) and the moments engagement follows."""

    lead: np.ndarray
    stage: np.ndarray
    when: np.ndarray
    reason: np.ndarray
    sql_at: np.ndarray  # first qualification on the main path, NaN if none
    revived_at: np.ndarray  # a recycled lead's return as an MQL, NaN if none


def _draw_stages(rng: np.random.Generator, v: _Vocab, defs: Definitions, lead: _Leads) -> _Outcome:
    """Stage history with sales feedback, driven by fit, intent, the hand-raise and noise."""
    n = len(lead.created)
    rows = _Rows(v)
    everyone = np.ones(n, dtype=bool)
    t0 = lead.created + rng.uniform(0.0, 600.0, n)
    rows.add(everyone, defs.label.as_of_stage or "lead", t0)

    # Students and competitors: sales throws most out quickly with the matching reason.
    u = rng.random(n)
    dq_student = lead.student & (u < 0.85)
    dq_comp = lead.competitor & (u < 0.85)
    rows.add(dq_student, "disqualified", t0 + rng.uniform(0.3, 14.0, n) * DAY, _reason_code(v, "student", n))
    rows.add(dq_comp, "disqualified", t0 + rng.uniform(0.3, 10.0, n) * DAY, _reason_code(v, "competitor", n))
    open_ = ~(dq_student | dq_comp)

    logit = (
        -2.25 + 1.0 * (lead.fit - 1.6) + 1.0 * lead.intent + lead.demo * (0.3 + 1.2 * lead.decider)
        + 0.6 * lead.trial - 1.5 * lead.browser
        - 2.5 * (lead.student | lead.competitor) + rng.normal(0.0, 0.9, n)
    )  # fmt: skip
    is_sql = open_ & (rng.random(n) < _sigmoid(logit))

    # SQL path: mostly through MQL and SAL (some straight from sales outreach).
    to_sql = _lognormal_days(rng, 20.0, 0.9, n) * np.where(lead.demo, 0.6, 1.0)
    sql_t = t0 + to_sql
    via_mql = is_sql & (rng.random(n) < 0.85)
    mql_t = t0 + to_sql * rng.uniform(0.1, 0.5, n)
    sla = defs.sla.mql_follow_up_hours * 3600.0
    sal_t = mql_t + np.minimum(rng.exponential(0.6 * sla, n), 0.9 * (sql_t - mql_t))
    rows.add(via_mql, "mql", mql_t)
    rows.add(via_mql & (rng.random(n) < 0.95), "sal", sal_t)
    rows.add(is_sql, defs.label.target_stage, sql_t)

    r = rng.random(n)
    opp = is_sql & (r < 0.62)
    opp_t = sql_t + _lognormal_days(rng, 7.0, 0.6, n)
    rows.add(opp, "opportunity", opp_t)
    rows.add(is_sql & (r >= 0.62) & (r < 0.82), "disqualified", sql_t + rng.uniform(5.0, 60.0, n) * DAY,
             _reason_codes(rng, v, defs, "disqualified", n, {}, only=AFTER_SQL_REASONS))  # fmt: skip
    rows.add(is_sql & (r >= 0.82), "recycled", sql_t + rng.uniform(20.0, 90.0, n) * DAY)
    r = rng.random(n)
    rows.add(opp & (r < 0.32), "customer", opp_t + _lognormal_days(rng, 45.0, 0.5, n))
    rows.add(opp & (r >= 0.32) & (r < 0.87), "lost", opp_t + _lognormal_days(rng, 50.0, 0.6, n),
             _reason_codes(rng, v, defs, "lost", n, LOST_WEIGHTS))  # fmt: skip

    # Not SQL: some become MQLs sales reviews and then drops or recycles; others stall or get cleaned out.
    rest = open_ & ~is_sql
    mql2 = rest & (rng.random(n) < 0.55 * _sigmoid(logit + 1.0))
    mql2_t = t0 + _lognormal_days(rng, 10.0, 1.0, n)
    sal2 = mql2 & (rng.random(n) < 0.7)
    sal2_t = mql2_t + rng.exponential(0.8 * sla, n)
    rows.add(mql2, "mql", mql2_t)
    rows.add(sal2, "sal", sal2_t)
    r = rng.random(n)
    not_icp_boost = np.where(lead.fit < 1.2, 2.0, 1.0)
    dq_after = mql2 & (r < 0.5)
    rows.add(dq_after, "disqualified", np.maximum(mql2_t, sal2_t) + rng.uniform(3.0, 60.0, n) * DAY,
             _reason_codes(rng, v, defs, "disqualified", n, DISQUALIFY_WEIGHTS, skip=PROFILE_REASONS))  # fmt: skip
    recycled = mql2 & (r >= 0.5) & (r < 0.85)
    recycled_t = np.where(mql2, mql2_t + rng.uniform(14.0, 90.0, n) * DAY, t0 + rng.uniform(30.0, 200.0, n) * DAY)
    r = rng.random(n)
    cold = rest & ~mql2
    dq_cold = cold & (r < 0.2 * not_icp_boost)
    rows.add(dq_cold, "disqualified", t0 + rng.uniform(2.0, 120.0, n) * DAY,
             _reason_codes(rng, v, defs, "disqualified", n, {"not_icp": 2.0, "unreachable": 3.0}, only=COLD_REASONS))  # fmt: skip
    recycled |= cold & ~dq_cold & (r > 0.85)
    rows.add(recycled, "recycled", recycled_t)

    # Nurture works sometimes: a recycled lead comes back, is an MQL again and may qualify.
    revived = recycled & (rng.random(n) < 0.25)
    revived_t = recycled_t + rng.uniform(30.0, 150.0, n) * DAY
    late_sql = revived & (rng.random(n) < _sigmoid(logit + 0.5))
    rows.add(revived, "mql", revived_t)
    rows.add(late_sql, defs.label.target_stage, revived_t + _lognormal_days(rng, 10.0, 0.7, n))

    lead_idx, stage, when, reason = rows.arrays()
    return _Outcome(lead_idx, stage, when, reason, np.where(is_sql, sql_t, np.nan), np.where(revived, revived_t, np.nan))


def _truncated_exp(rng: np.random.Generator, tau: np.ndarray | float, length: np.ndarray) -> np.ndarray:
    """Offsets in [0, length) with density decaying like exp(-t / tau)."""
    u = rng.random(len(length))
    return -tau * np.log1p(-u * -np.expm1(-length / tau))


def _draw_events(
    rng: np.random.Generator, v: _Vocab, lead: _Leads, outcome: _Outcome, end_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Engagement events: anonymous history, the hand-raise, and about a year of follow-up."""
    names = _type_names(v)
    code = {k: i for i, k in enumerate(names)}
    created, intent = lead.created, lead.intent
    n = len(created)
    lead_ix = np.arange(n)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def emit(counts: np.ndarray, key: str, start: np.ndarray, offsets_fn: object) -> None:
        who = np.repeat(lead_ix, counts)
        if len(who):
            t = start[who] + offsets_fn(who)  # type: ignore[operator]
            parts.append((who, t, np.full(len(who), code[key])))

    # Anonymous history before the hand-raise: it becomes the lead's once the contact converts.
    pre_len = np.full(n, 120.0 * DAY)
    # Intent shows as a burst: the keener the lead, the closer its visits come to the hand-raise.
    burst = np.clip(np.exp(-0.5 * intent), 0.25, 3.0)
    before = lambda tau: lambda who: -_truncated_exp(rng, tau * DAY * burst[who], pre_len[who]) - 60.0  # noqa: E731
    reader = np.where(lead.browser, 5.0, 1.0)
    emit(rng.poisson(2.0 * reader * np.exp(0.6 * intent)), "page_view", created, before(20.0))
    emit(rng.poisson(0.25 * np.exp(1.0 * intent)), "pricing_page_view", created, before(15.0))
    emit(rng.poisson(0.15 * reader * np.exp(0.3 * intent)), "content_download", created, before(40.0))
    emit(rng.poisson(0.08 * np.exp(0.5 * intent)), "webinar_registration", created, before(45.0))
    listed = np.isin(list(SOURCES), ["Outbound", "Content Syndication", "Events"])[lead.source]
    emit(rng.poisson(np.where(listed, 1.5, 0.0)), "email_open", created, before(30.0))

    # The hand-raise itself, at creation.
    hand = np.array([code.get(HAND_RAISE[s] or "", -1) for s in SOURCES])[lead.source]
    hand = np.where(lead.demo, code["demo_request"], np.where(lead.trial, code["trial_request"], hand))
    has = hand >= 0
    parts.append((lead_ix[has], created[has], hand[has]))

    # Follow-up engagement for up to a year, fading with time (email nurture does not fade).
    length = np.clip(np.minimum(POST_LEAD_DAYS * DAY, end_s - created), 1.0, None)
    for key in _union(list(POST_RATES), [k for k in v.event_types if k not in POST_RATES and k not in DERIVED_TYPES]):
        base, slope, tau = POST_RATES.get(key, GENERIC_RATE)
        rate = base * np.exp(slope * intent)
        exposure = length / DAY if tau is None else tau * -np.expm1(-length / (tau * DAY))
        if tau is None:
            emit(rng.poisson(rate * exposure), key, created, lambda who: rng.random(len(who)) * length[who])
        else:
            emit(rng.poisson(rate * exposure), key, created, lambda who, tau=tau: _truncated_exp(rng, tau * DAY, length[who]))

    # Sales-ready leads often ask for a demo shortly before sales qualifies them.
    sql_time = outcome.sql_at
    late_demo = ~np.isnan(sql_time) & ~lead.demo & (rng.random(n) < 0.5)
    emit(late_demo.astype(int), "demo_request", np.nan_to_num(sql_time), lambda who: -rng.uniform(1.0, 10.0, len(who)) * DAY)
    # A recycled lead's return shows on the website first.
    back = ~np.isnan(outcome.revived_at)
    comeback = np.nan_to_num(outcome.revived_at)
    emit(rng.poisson(np.where(back, 4.0, 0.0)), "page_view", comeback, lambda who: -rng.uniform(0.0, 14.0, len(who)) * DAY)
    emit(rng.poisson(np.where(back, 1.5, 0.0)), "pricing_page_view", comeback, lambda who: -rng.uniform(0.0, 7.0, len(who)) * DAY)

    who, when, kind = (np.concatenate(c) for c in zip(*parts, strict=True))
    # Derived events: clicks follow opens, attendance follows registration.
    opens = kind == code["email_open"]
    clicks = opens & (rng.random(len(kind)) < np.clip(0.12 * np.exp(0.3 * intent[who]), 0.0, 0.6))
    regs = kind == code["webinar_registration"]
    attended = regs & (rng.random(len(kind)) < _sigmoid(-0.3 + 0.6 * intent[who]))
    who = np.concatenate([who, who[clicks], who[attended]])
    kind = np.concatenate([kind, np.full(clicks.sum(), code["email_click"]), np.full(attended.sum(), code["webinar_attended"])])
    when = np.concatenate([when, when[clicks] + rng.uniform(30.0, 7200.0, clicks.sum()),
                           when[attended] + rng.uniform(1.0, 14.0, attended.sum()) * DAY])  # fmt: skip

    # Some unsubscribe; email engagement stops there.
    unsub = rng.random(n) < _sigmoid(-2.6 - 0.5 * intent)
    unsub_t = np.where(unsub, created + rng.random(n) * length, np.inf)
    emailish = np.isin(kind, [code["email_open"], code["email_click"]])
    keep = ~(emailish & (when > unsub_t[who]))
    who, when, kind = who[keep], when[keep], kind[keep]
    return (
        np.concatenate([who, lead_ix[unsub]]),
        np.concatenate([when, unsub_t[unsub]]),
        np.concatenate([kind, np.full(unsub.sum(), code["unsubscribe"])]),
    )

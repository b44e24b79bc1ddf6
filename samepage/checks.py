"""Named expectations on the canonical tables: what every workspace's data must satisfy.

Each expectation has a name a person can search for and a sentence saying what it promises;
`check_tables` returns one result per expectation with how many rows break it, so a data
scientist (or a test) can see at a glance which promise a data set does not keep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from samepage.definitions import Definitions
from samepage.tables import EVENT_COLUMNS, LEAD_KEYS, STAGE_COLUMNS, CanonicalTables
from samepage.values import is_missing


@dataclass(frozen=True)
class Expectation:
    name: str
    promise: str
    failing_rows: Callable[[Definitions, CanonicalTables], int]


@dataclass(frozen=True)
class Result:
    """`failing_rows` is -1 when a column the expectation reads is missing (it could not be checked)."""

    name: str
    promise: str
    failing_rows: int

    @property
    def ok(self) -> bool:
        return self.failing_rows == 0


def _missing_columns(frame: pd.DataFrame, columns: list[str]) -> int:
    return len(frame) if any(c not in frame.columns for c in columns) else 0


def _utc(series: pd.Series) -> bool:
    return isinstance(series.dtype, pd.DatetimeTZDtype) and str(series.dtype.tz) == "UTC"


def _dated_shape(frame: pd.DataFrame, columns: list[str]) -> int:
    """Every row fails when a column is missing or `occurred_at` is not UTC."""
    return _missing_columns(frame, columns) or (0 if _utc(frame["occurred_at"]) else len(frame))


def _unknown_leads(t: CanonicalTables, frame: pd.DataFrame) -> int:
    return int((~frame["lead_id"].isin(t.leads["lead_id"])).sum())


def _reason_rows(d: Definitions, t: CanonicalTables) -> int:
    """Rows whose reason the definitions' stage rule refuses (an unknown stage is another promise)."""
    pairs = t.stages[["stage", "reason"]].value_counts(dropna=False)  # the rule once per distinct pair
    return sum(
        int(count)
        for (stage, reason), count in pairs.items()
        if (problem := d.stage_problem(_text(stage), _text(reason))) is not None and problem.field == "reason"
    )


def _text(value: object) -> str | None:
    return None if is_missing(value) else str(value)


EXPECTATIONS: list[Expectation] = [
    Expectation("leads_have_keys", "leads have lead_id and created_at columns",
                lambda d, t: _missing_columns(t.leads, LEAD_KEYS)),
    Expectation("lead_id_unique", "no lead_id appears twice in leads",
                lambda d, t: int(t.leads["lead_id"].duplicated(keep=False).sum())),
    Expectation("lead_id_present", "every lead has a non-empty lead_id",
                lambda d, t: int((t.leads["lead_id"].isna() | (t.leads["lead_id"].astype(str).str.strip() == "")).sum())),
    Expectation("created_at_utc", "created_at is a UTC timestamp on every lead",
                lambda d, t: len(t.leads) if not _utc(t.leads["created_at"]) else int(t.leads["created_at"].isna().sum())),
    Expectation("events_shape", "events have lead_id, occurred_at (UTC), type and value",
                lambda d, t: _dated_shape(t.events, EVENT_COLUMNS)),
    Expectation("events_of_known_leads", "every event belongs to a lead in leads",
                lambda d, t: _unknown_leads(t, t.events)),
    Expectation("event_types_defined", "every event type is one of the definitions' event_types",
                lambda d, t: int((~t.events["type"].isin([e.key for e in d.event_types])).sum())),
    Expectation("stages_shape", "stages have lead_id, stage, occurred_at (UTC) and reason",
                lambda d, t: _dated_shape(t.stages, STAGE_COLUMNS)),
    Expectation("stages_of_known_leads", "every stage row belongs to a lead in leads",
                lambda d, t: _unknown_leads(t, t.stages)),
    Expectation("stage_keys_defined", "every stage is a key of the definitions' stages",
                lambda d, t: int((~t.stages["stage"].isin([s.key for s in d.stages])).sum())),
    Expectation("reasons_where_required", "a stage with reasons (e.g. disqualified) carries one of its reasons",
                _reason_rows),
]


def check_tables(defs: Definitions, tables: CanonicalTables) -> list[Result]:
    """Every expectation, in order, with the number of rows that break it (0: kept)."""
    results = []
    for e in EXPECTATIONS:
        try:
            failing = int(e.failing_rows(defs, tables))
        except KeyError:
            failing = -1
        results.append(Result(e.name, e.promise, failing))
    return results

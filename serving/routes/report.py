"""GET /v1/report: the closed-loop funnel over a period, as JSON (the numbers the /report page draws)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator, WithJsonSchema

from serving.deps import DefsDep, RecordsDep, ScorerDep, SettingsDep
from serving.errors import ApiError, responses
from serving.patterns import FIRST_YEAR, LAST_YEAR, day_pattern, matcher
from serving.report import PeriodError, champion_out_of_time, load_report
from serving.report_schemas import FunnelReport


def full_date(value: object) -> object:
    """Only an RFC 3339 `full-date` a report covers is a day: pydantic alone would read 0 as 1970-01-01."""
    if isinstance(value, str) and matcher(day_pattern()).fullmatch(value):
        return value
    raise ValueError(f"expected a date such as 2026-11-20 (YYYY-MM-DD, {FIRST_YEAR} to {LAST_YEAR})")


Day = Annotated[date, BeforeValidator(full_date), WithJsonSchema({"type": "string", "format": "date", "pattern": day_pattern()})]

START = "First day (YYYY-MM-DD, UTC); default: the first lead's"
END = "Last day, inclusive (YYYY-MM-DD, UTC); default: today. Two days given either way round bound the period"

router = APIRouter(prefix="/v1", tags=["report"])


@router.get("/report", response_model=FunnelReport, responses=responses(401, 404, 422))
def report(
    settings: SettingsDep,
    defs: DefsDep,
    records: RecordsDep,
    scorer: ScorerDep,
    start: Annotated[Day | None, Query(description=START)] = None,
    end: Annotated[Day | None, Query(description=END)] = None,
) -> FunnelReport:
    """Leads whose as-of time falls in the period: funnel counts and rates, median stage times,
    MQLs missed by the SLA, disqualification reasons by source, and score calibration by band."""
    if start is not None and end is not None and start > end:
        # No schema can say "start before end", and a client generated from it must not meet a 422 it could
        # not foresee: the two days bound the period either way round (the answer's `period` shows it).
        start, end = end, start
    try:
        out_of_time = champion_out_of_time(settings, scorer.champion)
        return load_report(settings, defs, records, start, end, drift=scorer.drift(), out_of_time=out_of_time)
    except PeriodError as exc:
        raise ApiError(422, f"query.{exc}") from None
    except FileNotFoundError as exc:
        raise ApiError(404, str(exc)) from None

"""GET /v1/report: the closed-loop funnel over a period, as JSON (the numbers the /report page draws)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator, WithJsonSchema

from serving.deps import DefsDep, RecordsDep, SettingsDep
from serving.errors import ApiError, responses
from serving.report import PeriodError, load_report
from serving.report_schemas import FunnelReport

FULL_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def full_date(value: object) -> object:
    """Only an RFC 3339 `full-date` is a day: pydantic alone would read 0 as 1970-01-01 and "20261120" too."""
    if isinstance(value, str) and re.fullmatch(FULL_DATE, value):
        return value
    raise ValueError("expected a date such as 2026-11-20 (YYYY-MM-DD)")


Day = Annotated[date, BeforeValidator(full_date), WithJsonSchema({"type": "string", "format": "date"})]

router = APIRouter(prefix="/v1", tags=["report"])


@router.get("/report", response_model=FunnelReport, responses=responses(401, 404, 422))
def report(
    settings: SettingsDep,
    defs: DefsDep,
    records: RecordsDep,
    start: Annotated[Day | None, Query(description="First day (YYYY-MM-DD, UTC); default: the first lead's")] = None,
    end: Annotated[Day | None, Query(description="Last day, inclusive (YYYY-MM-DD, UTC); default: today")] = None,
) -> FunnelReport:
    """Leads whose as-of time falls in the period: funnel counts and rates, median stage times,
    MQLs missed by the SLA, disqualification reasons by source, and score calibration by band."""
    try:
        return load_report(settings, defs, records, start, end)
    except PeriodError as exc:
        raise ApiError(422, f"query.{exc}") from None
    except FileNotFoundError as exc:
        raise ApiError(404, str(exc)) from None

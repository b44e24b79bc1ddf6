"""GET /v1/report: the closed-loop funnel over a period, as JSON (the numbers the /report page draws)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from serving.deps import DefsDep, RecordsDep, SettingsDep
from serving.errors import ApiError, responses
from serving.report import PeriodError, load_report
from serving.report_schemas import FunnelReport

router = APIRouter(prefix="/v1", tags=["report"])


@router.get("/report", response_model=FunnelReport, responses=responses(401, 404, 422))
def report(
    settings: SettingsDep,
    defs: DefsDep,
    records: RecordsDep,
    start: Annotated[date | None, Query(description="First day (YYYY-MM-DD, UTC); default: the first lead's")] = None,
    end: Annotated[date | None, Query(description="Last day, inclusive (YYYY-MM-DD, UTC); default: today")] = None,
) -> FunnelReport:
    """Leads whose as-of time falls in the period: funnel counts and rates, median stage times,
    MQLs missed by the SLA, disqualification reasons by source, and score calibration by band."""
    try:
        return load_report(settings, defs, records, start, end)
    except PeriodError as exc:
        raise ApiError(422, f"query.{exc}") from None
    except FileNotFoundError as exc:
        raise ApiError(404, str(exc)) from None

"""GET /report: the closed-loop funnel report as a page, from the same `load_report` as `GET /v1/report`."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from serving.pages.render import render
from serving.pages.session import login_redirect
from serving.pages.views import report_context
from serving.report import PeriodError, champion_out_of_time, load_report

router = APIRouter(include_in_schema=False)


def parse_day(value: str | None, name: str) -> date | None:
    """A period end from the query string; a bad one is a `PeriodError` naming the parameter."""
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise PeriodError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None


@router.get("/report")
async def report_page(request: Request, start: str | None = None, end: str | None = None) -> Response:
    if (redirect := login_redirect(request)) is not None:
        return redirect
    state = request.app.state
    try:
        report = await run_in_threadpool(
            load_report,
            state.settings,
            state.defs,
            state.records,
            parse_day(start, "start"),
            parse_day(end, "end"),
            drift=state.scorer.drift(),
            out_of_time=champion_out_of_time(state.settings, state.scorer.champion),
        )
    except PeriodError as exc:
        return render(request, "report.html", status=422, active="report", report=None, error=str(exc), start=start, end=end)
    except FileNotFoundError as exc:
        return render(request, "report.html", status=404, active="report", report=None, error=str(exc), start=start, end=end)
    return render(request, "report.html", active="report", error=None, **report_context(state.defs, report))

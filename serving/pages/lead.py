"""The lead record for sales: `GET /leads/{id}` shows it, `POST /leads/{id}` records a stage or scores again.

The page reuses the API's own functions: the record is `lead_record_dict` (the dict `GET /v1/leads`
returns), a fresh score comes from the same `Scorer.score`, and the stage form goes through the
`POST /v1/feedback` route function, so the page and the API cannot disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from samepage.definitions import Definitions
from samepage.errors import SamepageError, UnknownLead
from serving.errors import ApiError, describe_validation, domain_status
from serving.pages.render import render
from serving.pages.session import login_redirect, read_form, same_origin
from serving.pages.views import flash_message, lead_context
from serving.routes.feedback import feedback as record_feedback
from serving.routes.leads import lead_record_dict
from serving.schemas import FeedbackIn

router = APIRouter(include_in_schema=False)


@router.get("/leads")
def open_lead(request: Request, lead_id: str = "") -> Response:
    """The header's "open a lead" box."""
    if not lead_id.strip():
        return RedirectResponse("/report", status_code=303)
    return RedirectResponse(f"/leads/{quote(lead_id.strip(), safe='')}", status_code=303)


@router.get("/leads/{lead_id:path}")
async def lead_page(
    request: Request,
    lead_id: str,
    recorded: str | None = None,
    reason: str | None = None,
    again: str | None = None,
    rescored: str | None = None,
) -> Response:
    if (redirect := login_redirect(request)) is not None:
        return redirect
    defs: Definitions = request.app.state.defs
    flash = flash_message(defs, recorded, reason, again, rescored)
    return await run_in_threadpool(_lead_response, request, lead_id, flash, None, 200)


@router.post("/leads/{lead_id:path}")
async def lead_feedback(request: Request, lead_id: str) -> Response:
    """The stage form: validated and stored by the `POST /v1/feedback` route function itself."""
    if (redirect := login_redirect(request)) is not None:
        return redirect
    if not same_origin(request):
        return HTMLResponse("This form only accepts posts from samepage's own pages.", status_code=403)
    form = await read_form(request)
    state = request.app.state
    if form.get("action") == "rescore":
        return await run_in_threadpool(_rescore, request, lead_id)
    try:
        body = FeedbackIn(
            lead_id=lead_id,
            stage=form.get("stage", ""),
            reason=form.get("reason") or None,
            occurred_at=datetime.now(UTC),
            event_id=form.get("event_id") or None,
            actor="lead page",
        )
        out = await run_in_threadpool(record_feedback, body, state.defs, state.records, state.metrics, Response())
    except ValidationError as exc:
        _, message = describe_validation([{**e, "loc": ("form", *e["loc"])} for e in exc.errors()])
        return await run_in_threadpool(_lead_response, request, lead_id, None, message, 422)
    except ApiError as exc:
        return await run_in_threadpool(_lead_response, request, lead_id, None, exc.message.replace("body.", "form."), exc.status)
    query = {
        "recorded": out["stage"],
        **({"reason": out["reason"]} if out["reason"] else {}),
        **({} if out["created"] else {"again": "1"}),
    }
    return RedirectResponse(f"/leads/{quote(lead_id, safe='')}?{urlencode(query)}", status_code=303)


def _rescore(request: Request, lead_id: str) -> Response:
    """"Score again": the API's scorer on the feature store's current values, saved to the record."""
    state = request.app.state
    try:
        scored = state.scorer.scored([(lead_id, {})])
    except SamepageError as exc:
        return _lead_response(request, lead_id, None, f"Could not score this lead again: {exc.message}", domain_status(exc))
    state.writer.submit(scored)
    return RedirectResponse(f"/leads/{quote(lead_id, safe='')}?{urlencode({'rescored': '1'})}", status_code=303)


def _lead_response(request: Request, lead_id: str, flash: str | None, error: str | None, status: int) -> HTMLResponse:
    state = request.app.state
    defs: Definitions = state.defs
    try:
        record = lead_record_dict(lead_id, state.settings, defs, state.scorer, state.records, state.writer)
    except UnknownLead as exc:
        return render(request, "missing.html", status=404, lead_id=lead_id, message=exc.message, active="")
    result, no_score = _result(state, record, lead_id)
    context = lead_context(defs, record, result, no_score)
    return render(request, "lead.html", status=status, active="lead", **context, flash=flash, error=error)


def _result(state: Any, record: dict[str, Any], lead_id: str) -> tuple[dict[str, Any] | None, str]:
    """The latest score as the API returns it; a lead the store knows but nobody scored yet is scored now."""
    latest = record["latest_score"]
    if latest is not None:
        return latest["result"], ""
    if not record["known"]:
        return None, "Not scored yet: the feature store does not know this lead, and no score was sent for it."
    try:
        scored = state.scorer.scored([(lead_id, {})])
    except SamepageError as exc:
        return None, f"Not scored yet. {exc.message}"
    state.writer.submit(scored)
    return scored[0].contract(), ""

"""GET /definitions: the shared vocabulary for both teams to read, and the preview of a proposed file.

The proposed file is the one `samepage serve --proposed F` was started with; the preview itself
(diff, retrain verdict, expected MQLs a week) is computed by training through the function the
command line handed to `create_app`, on the champion of the moment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from samepage.changes import Preview, describe_criterion, describe_feature
from samepage.definitions import Definitions
from serving.pages.render import render
from serving.pages.session import login_redirect

router = APIRouter(include_in_schema=False)
log = logging.getLogger("samepage.serving")
NO_PROPOSAL = "samepage serve --proposed F"
PREVIEW_FAILED = "The preview of the proposed file could not be computed (the service log has the details)."


@router.get("/definitions")
async def definitions_page(request: Request) -> Response:
    if (redirect := login_redirect(request)) is not None:
        return redirect
    state = request.app.state
    proposed: Callable[[], Preview] | None = state.proposed
    preview, problem = None, None
    if proposed is not None:
        try:
            preview = await run_in_threadpool(proposed)
        except Exception as exc:  # the registry or artifact store failing must not take the page down
            log.error("definitions preview failed: %s", exc, extra={"event": "preview_failed", "error": type(exc).__name__})
            problem = PREVIEW_FAILED
    return render(request, "definitions.html", active="definitions", **definitions_context(state.defs, preview, problem))


def definitions_context(defs: Definitions, preview: Preview | None, problem: str | None = None) -> dict[str, Any]:
    """Everything definitions.html shows, in the definitions' own words."""
    owners: dict[str, str] = {team: f"{o.name} ({o.role})" for team, o in defs.owners.items()}
    groups: dict[str, list[dict[str, str]]] = {}
    for f in defs.features:
        groups.setdefault(f.group, []).append(
            {"label": f.label, "key": f.key, "reads": describe_feature(f), "direction": _direction(f.direction)}
        )
    icp = defs.icp
    employees = icp.employees
    return {
        "defs": defs,
        "owners": owners,
        "stages": [
            {
                "name": s.name, "key": s.key, "owner": s.owner, "entry": s.entry, "off_funnel": s.off_funnel,
                "reasons": [r.label for r in s.reasons],
            }
            for s in defs.stages
        ],  # fmt: skip
        "target": defs.stage(defs.label.target_stage).name,
        "as_of": defs.stage(defs.label.as_of_stage).name if defs.label.as_of_stage else "its creation",
        "icp": [
            ("Industries", ", ".join(icp.industries) or "any"),
            ("Company size (employees)", _range(employees.min, employees.max)),
            ("Countries", ", ".join(icp.countries) or "any"),
            ("Seniorities", ", ".join(icp.personas.seniorities) or "any"),
            ("Departments", ", ".join(icp.personas.departments) or "any"),
            ("Titles containing", ", ".join(icp.personas.titles_contain) or "—"),
        ],
        "criteria": [{"description": c.description, "rule": describe_criterion(c)} for c in defs.mql.criteria],
        "grades": defs.grade_bands,
        "feature_groups": sorted(groups.items()),
        "event_types": defs.event_types,
        "changelog": [
            {"version": e.version, "date": e.date, "changes": e.changes, "signed": [owners.get(t, t) for t in e.by]}
            for e in reversed(defs.changelog)
        ],
        "preview": preview,
        "preview_problem": problem,
        "no_proposal": NO_PROPOSAL,
    }


def _direction(direction: str | None) -> str:
    return {"up": "more never lowers the score", "down": "more never raises the score"}.get(direction or "", "")


def _range(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "any"
    if high is None:
        return f"{low:,.0f} or more"
    if low is None:
        return f"up to {high:,.0f}"
    return f"{low:,.0f} to {high:,.0f}"

"""Liveness, readiness (with the reason when not ready) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import DefsDep, MetricsDep, OnlineDep, ScorerDep
from serving.schemas import HealthOut, ReadyOut

RULES_NOTE = "no model yet; the points scale, not outcomes, turns points into a likelihood"

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> dict:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Cannot score at all (no champion, no feature store), with the reason"}},
)
def readyz(scorer: ScorerDep, defs: DefsDep, online: OnlineDep) -> JSONResponse | dict:
    """Ready when a champion that fits the current definitions is loaded.

    Without one (cold start) the answer is 200 with `ready: false`: scores come from the team's points
    rules, and `reason` says so and why. 503 when nothing can score (no feature store yet), and while
    API rows a restart found unpushed are being pushed to the online store (a score would miss them).
    """
    catching_up = not online.caught_up.is_set()
    champion = scorer.champion
    if champion is None:
        reason = f"{scorer.reason}; {CATCHING_UP}" if catching_up else scorer.reason
        body = ReadyOut(ready=False, reason=reason, definitions_version=defs.version_string)
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    rules = f"scores come from the team's points rules in the definitions ({RULES_NOTE}) because {scorer.reason}"
    if catching_up:
        reason = f"{rules if not champion.registered else 'the champion is loaded'}; {CATCHING_UP}"
        out = {"ready": False, "reason": reason, "model": champion.ref, "definitions_version": defs.version_string}
        return JSONResponse(ReadyOut.model_validate(out).model_dump(mode="json"), status_code=503)
    if not champion.registered:
        return {"ready": False, "reason": rules, "model": champion.ref, "definitions_version": defs.version_string}
    return {"ready": True, "model": champion.ref, "definitions_version": defs.version_string}


CATCHING_UP = "catching up: leads and events stored before the restart are being pushed to the online store"

PROMETHEUS: dict[int | str, dict[str, Any]] = {
    200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}
}


metrics_router = APIRouter(tags=["operations"])  # included with the key check off loopback (serving.app)


@metrics_router.get("/metrics", response_class=Response, responses=PROMETHEUS)
def metrics(m: MetricsDep) -> Response:
    """Prometheus metrics: requests, latency, scores, MQL verdicts, feedback, the model served.

    Open on loopback; off loopback it needs the API key unless `SAMEPAGE_PUBLIC_METRICS` is set.
    """
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)

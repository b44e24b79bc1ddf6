"""Liveness, readiness (with the reason when not ready) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from serving.deps import DefsDep, MetricsDep, ScorerDep
from serving.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> dict:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut, "description": "Not ready, with the reason"}})
def readyz(scorer: ScorerDep, defs: DefsDep) -> JSONResponse | dict:
    """Ready when a champion that fits the current definitions is loaded; 503 with the reason if not."""
    champion = scorer.champion
    if champion is None:
        body = ReadyOut(ready=False, reason=scorer.reason, definitions_version=defs.version_string)
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    model = {"name": champion.name, "version": champion.version}
    return {"ready": True, "model": model, "definitions_version": defs.version_string}


PROMETHEUS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}
}


@router.get("/metrics", response_class=Response, responses=PROMETHEUS_TEXT)
def metrics(m: MetricsDep) -> Response:
    """Prometheus metrics: requests, latency, scores, MQL verdicts, feedback, the model served."""
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)

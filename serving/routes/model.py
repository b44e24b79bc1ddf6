"""GET /v1/model: the champion being served, with its metrics and the definitions it was trained under."""

from __future__ import annotations

from fastapi import APIRouter

from samepage.bundle import CHAMPION
from serving.deps import ScorerDep
from serving.errors import responses
from serving.schemas import ModelOut

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelOut, responses=responses(401, 503))
def model(scorer: ScorerDep) -> dict:
    """The champion's name, version, metrics, definitions version and training time."""
    c = scorer.current()
    return {
        "name": c.name,
        "version": c.version,
        "alias": CHAMPION,
        "definitions_version": c.tags.get("definitions_version"),
        "fingerprint": c.tags.get("fingerprint"),
        "feature_service": c.tags.get("feature_service"),
        "trained_at": c.tags.get("trained_at"),
        "run_id": c.run_id,
        "metrics": c.metrics,
        "loaded_at": c.loaded_at,
    }

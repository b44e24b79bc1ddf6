"""GET /v1/model: the model scoring (the champion, or the team's points rules in a cold start), with its metrics."""

from __future__ import annotations

from fastapi import APIRouter

from samepage.bundle import CHAMPION
from serving.deps import DefsDep, ScorerDep
from serving.errors import responses
from serving.schemas import ModelOut

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelOut, responses=responses(401, 503))
def model(scorer: ScorerDep, defs: DefsDep) -> dict:
    """The model's name, version, kind, metrics, definitions version and training time.

    In a cold start: `points_rules` at the definitions' version, kind "rules", with the reason.
    """
    c = scorer.current()
    common = {
        "name": c.name,
        "version": c.version,
        "kind": c.kind,
        "calibrated": c.bundle.calibrated,
        "algorithm": c.bundle.kind,
        "loaded_at": c.loaded_at,
        "drift": c.bundle.meta.get("drift"),
    }
    if not c.registered:
        return {
            **common,
            "reason": scorer.reason,
            "alias": None,
            "definitions_version": defs.version_string,
            "fingerprint": defs.fingerprint,
            "feature_service": c.online.feature_service,
            "trained_at": None,
            "run_id": None,
            "metrics": {},
        }
    return {
        **common,
        "reason": None,
        "alias": CHAMPION,
        "definitions_version": c.tags.get("definitions_version"),
        "fingerprint": c.tags.get("fingerprint"),
        "feature_service": c.tags.get("feature_service"),
        "trained_at": c.tags.get("trained_at"),
        "run_id": c.run_id,
        "metrics": c.metrics,
    }

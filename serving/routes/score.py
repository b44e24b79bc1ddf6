"""POST /v1/score and /v1/score/batch: SQL likelihood, MQL verdict and the exact explanation."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from serving.deps import ScorerDep, WriterDep
from serving.errors import responses
from serving.schemas import LeadIn, ScoreOut, ScoresIn, ScoresOut

router = APIRouter(prefix="/v1", tags=["scoring"])


@router.post("/score", response_model=ScoreOut, responses=responses(400, 401, 404, 413, 422, 503))
def score(lead: LeadIn, scorer: ScorerDep, writer: WriterDep) -> dict:
    """Score one lead: features from the online store, overridden by the request's attributes."""
    result = scorer.score([(lead.lead_id, lead.attributes)], where="body.")[0]
    writer.submit([result])
    return result


@router.post("/score/batch", response_model=ScoresOut, responses=responses(400, 401, 404, 413, 422, 503))
async def score_batch(body: ScoresIn, scorer: ScorerDep, writer: WriterDep) -> dict:
    """Score up to 1,000 leads in one call; results come back in the request's order."""
    results = await run_in_threadpool(scorer.score, [(lead.lead_id, lead.attributes) for lead in body.leads], None, "body.")
    writer.submit(results)
    return {"results": results}

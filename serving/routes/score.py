"""POST /v1/score and /v1/score/batch: SQL likelihood, MQL verdict and the exact explanation.

The answers are serialized straight to JSON bytes (`json_bytes`, no second validation pass):
a 1,000-lead batch carries 28,000 contributions and re-validating them cost more than scoring.
`response_model` still documents the shape, and the tests and the schemathesis run hold the
answers to it. One lead is scored on the event loop (a few ms of CPU; a hop to the thread pool
and back cost more at the tail: p99 5.3 ms vs 8.8-12 ms in bench/serve.py), a batch in the pool.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from samepage.answers import json_bytes
from samepage.definitions import Definitions
from serving.attributes import attribute_rules
from serving.deps import DefsDep, ScorerDep, WriterDep
from serving.errors import responses
from serving.schemas import LeadIn, ScoreOut, ScoresIn, ScoresOut
from serving.scorer import Scorer
from serving.writer import ScoreWriter

router = APIRouter(prefix="/v1", tags=["scoring"])


class JSONBytes(JSONResponse):
    """JSON already serialized to bytes is sent as is (documented like any JSON answer)."""

    def render(self, content: object) -> bytes:
        return content if isinstance(content, bytes) else super().render(content)


@router.post("/score", response_model=ScoreOut, response_class=JSONBytes, responses=responses(400, 401, 404, 413, 422, 503))
async def score(lead: LeadIn, request: Request) -> Response:
    """Score one lead: features from the online store, overridden by the request's attributes."""
    # The app's state read here, not through three dependencies: each one solved costs more than the read.
    state = request.app.state
    defs: Definitions = state.defs
    scorer: Scorer = state.scorer
    writer: ScoreWriter = state.writer
    attribute_rules(defs).check(lead.attributes, "body.")
    scored = scorer.scored([(lead.lead_id, lead.attributes)], where="body.")
    body = json_bytes(scored[0].contract())
    writer.submit(scored)  # the writer's thread serializes the stored (compact) form
    return JSONBytes(body)


@router.post(
    "/score/batch", response_model=ScoresOut, response_class=JSONBytes, responses=responses(400, 401, 404, 413, 422, 503)
)
async def score_batch(body: ScoresIn, defs: DefsDep, scorer: ScorerDep, writer: WriterDep) -> Response:
    """Score up to 1,000 leads in one call; results come back in the request's order."""
    rules = attribute_rules(defs)
    for i, lead in enumerate(body.leads):
        rules.check(lead.attributes, f"body.leads[{i}].")
    scored = await run_in_threadpool(scorer.scored, [(lead.lead_id, lead.attributes) for lead in body.leads], None, "body.")
    answers = json_bytes({"results": [s.contract() for s in scored]})  # one call: a third of the time of one per answer
    writer.submit(scored)  # the writer's thread serializes the stored (compact) form
    return JSONBytes(answers)

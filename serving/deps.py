"""Typed dependencies: what a route needs, taken from the app's state (set once by the lifespan).

The plain reads are `async`: FastAPI runs a sync dependency in the thread pool, a hop per
dependency per request that cost more than the read (tail latency of /v1/score). `get_live` may
open the store on first use, so it stays sync.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from features.live import LiveFeatures
from samepage.definitions import Definitions
from samepage.inbox import Inbox
from samepage.records import RecordStore
from samepage.settings import Settings
from serving.metrics import Metrics
from serving.online import OnlineWriter
from serving.scorer import Scorer
from serving.writer import ScoreWriter


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_defs(request: Request) -> Definitions:
    return request.app.state.defs


async def get_scorer(request: Request) -> Scorer:
    return request.app.state.scorer


async def get_records(request: Request) -> RecordStore:
    return request.app.state.records


async def get_writer(request: Request) -> ScoreWriter:
    return request.app.state.writer


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_inbox(request: Request) -> Inbox:
    return request.app.state.inbox


async def get_online(request: Request) -> OnlineWriter:
    return request.app.state.online


def get_live(request: Request) -> LiveFeatures | None:
    """The online writer; None until `samepage features` has built the store (rows wait in the inbox)."""
    return request.app.state.online.get()


SettingsDep = Annotated[Settings, Depends(get_settings)]
DefsDep = Annotated[Definitions, Depends(get_defs)]
ScorerDep = Annotated[Scorer, Depends(get_scorer)]
RecordsDep = Annotated[RecordStore, Depends(get_records)]
WriterDep = Annotated[ScoreWriter, Depends(get_writer)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
InboxDep = Annotated[Inbox, Depends(get_inbox)]
LiveDep = Annotated[LiveFeatures | None, Depends(get_live)]
OnlineDep = Annotated[OnlineWriter, Depends(get_online)]

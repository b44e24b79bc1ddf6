"""The funnel report's answer: the pydantic models `GET /v1/report` returns and the `/report` page reads.

Only shapes and their field descriptions (they document the OpenAPI schema); `serving.report`
computes them. `extra="forbid"` keeps a computed field from slipping out unnamed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Period(_Out):
    start: date = Field(description="First day of the period (UTC, inclusive)")
    end: date = Field(description="Last day of the period (UTC, inclusive)")


class FunnelStep(_Out):
    key: str
    name: str
    owner: str
    leads: int = Field(description="Cohort leads that reached this stage or a later one")
    rate_from_previous: float | None = Field(description="leads / leads at the previous stage")
    rate_from_first: float | None = Field(description="leads / leads at the first stage")


class StageTime(_Out):
    from_stage: str
    to_stage: str
    leads: int = Field(description="Leads with both stages recorded, the second one after the first")
    median_hours: float | None


class SlaOut(_Out):
    follow_up_hours: float
    mqls: int = Field(description="Cohort leads that were recorded as MQL")
    within_sla: int = Field(description="Followed up (any later stage change) within the SLA")
    late: int = Field(description="Followed up, but after the SLA")
    not_followed_up: int = Field(description="No follow-up at all, and the SLA has run out")
    pending: int = Field(description="No follow-up yet, but still inside the SLA")
    missed: int = Field(description="late + not_followed_up: MQLs not followed up within the SLA")
    missed_rate: float | None = Field(description="missed / (mqls - pending)")
    median_follow_up_hours: float | None


class ReasonRef(_Out):
    key: str
    label: str


class SourceDisqualifications(_Out):
    source: str
    leads: int = Field(description="Cohort leads from this source")
    disqualified: int = Field(description="Of them, leads whose latest disqualification is recorded")
    by_reason: dict[str, int] = Field(description="reason key -> leads (latest disqualification of each lead)")


class Disqualifications(_Out):
    reasons: list[ReasonRef]
    by_source: list[SourceDisqualifications]
    total: int


class Band(_Out):
    low: float
    high: float
    leads: int
    predicted: float | None = Field(description="Mean score of the band's leads")
    actual: float | None = Field(description="Share of the band's leads that reached the label stage in the window")


class Calibration(_Out):
    target_stage: str
    window_days: int
    scored: int = Field(description="Cohort leads with a latest score")
    with_outcome: int = Field(description="Scored leads whose label window after scoring has closed (their outcome is known)")
    open_window: int = Field(description="Scored leads left out: the window after their score is still open")
    already_at_target: int = Field(
        0, description="Scored leads left out: they had reached the label stage before they were scored"
    )
    positives: int
    roc_auc: float | None = Field(description="How well the score ranks the leads that reached the stage above the rest")
    brier: float | None
    mean_predicted: float | None
    actual_rate: float | None
    bands: list[Band]
    source: Literal["live", "out_of_time"] = Field(
        "live",
        description="live: the cohort's latest scores against their outcomes; out_of_time: no scored lead of the period "
        "has an outcome yet, so the champion's out-of-time predictions from training are shown (not limited to the period)",
    )
    source_note: str = Field("", description="Which scores the panel shows, in words")


class FunnelReport(_Out):
    """Everything `/report` shows, in the same numbers `GET /v1/report` returns."""

    period: Period
    generated_at: datetime
    definitions_version: str
    leads: int = Field(description="Cohort size: leads whose as-of time is in the period")
    funnel: list[FunnelStep]
    stage_times: list[StageTime]
    sla: SlaOut
    disqualifications: Disqualifications
    calibration: Calibration
    drift: dict[str, Any] | None = Field(
        default=None,
        description="The scoring model's drift check from its training (newest period against the history it learnt from); "
        "None when the points rules score",
    )

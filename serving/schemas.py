"""The HTTP API's request and response shapes (the contract's `/v1` fields), with examples.

Examples use the demo vocabulary so that `/docs` shows requests that work against `samepage up`.
Definition-dependent checks (stage keys, reasons) happen in the routes, which know the definitions.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from samepage.definitions import GradeLetter
from serving.patterns import date_time_pattern, matcher

MAX_BATCH = 1_000  # the contract's batch limit
MAX_ATTRIBUTES = 100

# Ids and names are stored and looked up as text: a control character (PostgreSQL refuses NUL) or an
# unpaired surrogate (no database encodes it) is a client's mistake, a 422 naming the field, not a 500.
NO_CONTROL_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"  # what `/openapi.json` says (ECMA regex)
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def plain_text(value: str) -> str:
    """The value, if it holds no control character and no unpaired surrogate (else a ValueError)."""
    found = _NOT_TEXT.search(value)
    if found:
        char = found.group()
        kind = "an unpaired surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        raise ValueError(f"contains {kind} (U+{ord(char):04X} at position {found.start()})")
    return value


def text_field(min_length: int, max_length: int, description: str) -> Any:
    """A `str` of that length with no control characters, documented with the pattern it is held to."""
    return Field(
        min_length=min_length, max_length=max_length, description=description, json_schema_extra={"pattern": NO_CONTROL_PATTERN}
    )


def date_time_text(value: Any) -> Any:
    """Only an RFC 3339 date-time string (or one without offset) becomes a time: not 0, not "2026-11-20"."""
    if isinstance(value, datetime):  # a Python caller (the lead page) passes a time, not text
        return value
    if isinstance(value, str) and matcher(date_time_pattern(None, offset_required=False)).fullmatch(value):
        return value.upper()  # the parser wants "T" and "Z"
    raise ValueError("expected an RFC 3339 date-time such as 2026-11-20T15:30:00Z (no offset means UTC)")


# The years a stage change may have are the definitions' and the clock's (`serving.openapi` says them).
StageTime = Annotated[
    datetime,
    BeforeValidator(date_time_text),
    WithJsonSchema({"type": "string", "pattern": date_time_pattern(None, offset_required=False)}),
]

LeadId = Annotated[str, text_field(1, 200, "The lead's id in the CRM / marketing automation"), AfterValidator(plain_text)]
AttributeValue = str | int | float | bool | None
Value = str | int | float | bool | None

_LEAD_EXAMPLE: dict[str, Any] = {"lead_id": "L-000042", "attributes": {"seniority": "VP", "pricing_views_30d": 3}}
# Who a new lead is, as marketing automation sends it (scored from directly, or PUT as a lead).
NEW_LEAD_ATTRIBUTES: dict[str, Any] = {
    "source": "Webinar",
    "industry": "Software",
    "employees": 420,
    "country": "United States",
    "seniority": "Director",
    "department": "Marketing",
}
_NEW_LEAD_EXAMPLE: dict[str, Any] = {"lead_id": "hubspot-98121", "attributes": {**NEW_LEAD_ATTRIBUTES, "demo_requests_90d": 1}}


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeadIn(BaseModel):
    """A lead to score: known to the feature store by id, and/or described by attributes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_LEAD_EXAMPLE, _NEW_LEAD_EXAMPLE]})

    lead_id: LeadId
    attributes: dict[Annotated[str, Field(min_length=1, max_length=64)], AttributeValue] = Field(
        default_factory=dict,
        max_length=MAX_ATTRIBUTES,
        description="Lead attributes or feature values that override the feature store's (by feature key)",
    )


class ScoresIn(BaseModel):
    """Up to 1,000 leads scored in one call; results come back in the same order."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"leads": [_LEAD_EXAMPLE, _NEW_LEAD_EXAMPLE]}]})

    leads: list[LeadIn] = Field(min_length=1, max_length=MAX_BATCH)


class CriterionOut(_Out):
    key: str
    description: str
    met: bool


class ChangeOut(_Out):
    """One change of an actionable feature that `mql.to_pass` suggests (one more event of a type)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    feature: str
    label: str = Field(description="The feature in the plain words of the definitions")
    from_: Value = Field(alias="from", description="The value it was scored with")
    to: Value = Field(description="The value that, with the other changes, makes it an MQL")


class MqlOut(_Out):
    passed: bool
    threshold: float
    criteria: list[CriterionOut]
    summary: str = Field(description="One sentence in the shared vocabulary (for a non-MQL: also what would make it one)")
    to_pass: list[ChangeOut] | None = Field(
        default=None,
        description="Not an MQL: the fewest changes of actionable features that make it one, checked with the model "
        "([] when none within a few events does, or a criterion no such change fixes fails: the summary says which); "
        "null for an MQL",
    )
    score_if: float | None = Field(default=None, ge=0.0, le=1.0, description="The score with the `to_pass` changes")


class TrendOut(_Out):
    previous_score: float = Field(ge=0.0, le=1.0, description="The lead's latest score before this one")
    previous_at: datetime = Field(description="When that score was given")
    delta: float = Field(description="score - previous_score")


class ContributionOut(_Out):
    feature: str
    label: str = Field(description="The feature in the plain words of the definitions")
    value: Value
    contribution: float = Field(description="Push on the score in log-odds (positive raises it)")


class ExplanationOut(_Out):
    base_value: float = Field(description="Log-odds before any feature; base_value + sum(contributions) = logit(score)")
    contributions: list[ContributionOut]
    reasons_up: list[str]
    reasons_down: list[str]


class ModelRef(_Out):
    """Which model scored: a registered champion ("learned"), or the team's points rules ("rules")."""

    name: str = Field(description="`sql_likelihood` (the registered champion) or `points_rules` (cold start)")
    version: str = Field(description="The registry version, or for `points_rules` the definitions version")
    kind: Literal["learned", "rules"] = Field(description="rules: the team's points rules from the definitions score the lead")
    calibrated: bool = Field(description="Whether the score was fitted to outcomes (false: the points scale's reading)")


class StoredModelRef(_Out):
    """The model of a stored score; scores saved before models had kinds have none."""

    name: str
    version: str
    kind: Literal["learned", "rules"] | None = None
    calibrated: bool | None = None


_SCORE_EXAMPLE: dict[str, Any] = {
    "lead_id": "L-000042",
    "score": 0.4132,
    "mql": {
        "passed": True,
        "threshold": 0.35,
        "criteria": [
            {"key": "not_student", "description": "The contact is not a student", "met": True},
            {"key": "not_competitor", "description": "The lead does not work for a competitor", "met": True},
            {
                "key": "reachable",
                "description": "The contact can be reached (has not unsubscribed in the last 90 days)",
                "met": True,
            },
        ],
        "summary": "MQL: the score 0.41 is at or above the threshold 0.35 and all 3 criteria are met.",
        "to_pass": None,
        "score_if": None,
    },
    "explanation": {
        "base_value": -1.52,
        "contributions": [
            {"feature": "demo_requests_90d", "label": "Demo requests in the last 90 days", "value": 2, "contribution": 0.91},
            {"feature": "seniority", "label": "Seniority", "value": "VP", "contribution": 0.32},
            {"feature": "days_since_last_activity", "label": "Days since the last activity", "value": 41, "contribution": -0.18},
        ],
        "reasons_up": ["Demo requests in the last 90 days: 2 (raises the score)", "Seniority: VP (raises the score)"],
        "reasons_down": ["Days since the last activity: 41 (lowers the score)"],
    },
    "model": {"name": "sql_likelihood", "version": "3", "kind": "learned", "calibrated": True},
    "grade": "B",
    "trend": {"previous_score": 0.2874, "previous_at": "2026-11-16T09:12:00Z", "delta": 0.1258},
    "definitions_version": "1.0.0+3f9a0c12ab45",
    "scored_at": "2026-11-23T14:05:00Z",
}


class _Scored(_Out):
    lead_id: str
    score: float = Field(ge=0.0, le=1.0, description="P(reaches the label stage within the window)")
    mql: MqlOut
    explanation: ExplanationOut
    model: ModelRef
    definitions_version: str
    scored_at: datetime


class ScoreOut(_Scored):
    """A score, the MQL verdict and the exact explanation, with the versions that produced them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_SCORE_EXAMPLE]})

    grade: GradeLetter = Field(description="The definitions' score band (`grades`) the score falls in")
    trend: TrendOut | None = Field(description="The change since this lead's previous score; null when never scored before")


class StoredScoreOut(_Scored):
    """A kept score; those kept before grades and trends have neither."""

    grade: GradeLetter | None = None
    trend: TrendOut | None = None


class ScoresOut(_Out):
    results: list[ScoreOut]


class FeedbackIn(BaseModel):
    """A stage change from sales or the CRM; it becomes a label for the next training."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "lead_id": "L-000042",
                    "stage": "sql",
                    "occurred_at": "2026-11-20T15:30:00Z",
                    "event_id": "crm-evt-5521",
                    "actor": "luis.ortega",
                },
                {
                    "lead_id": "L-000077",
                    "stage": "disqualified",
                    "reason": "student",
                    "occurred_at": "2026-11-21T09:00:00Z",
                    "event_id": "crm-evt-5522",
                },
            ]
        },
    )

    lead_id: LeadId
    stage: str = Field(min_length=1, max_length=64, description="A stage key of the definitions")
    occurred_at: StageTime
    reason: (
        Annotated[str, text_field(0, 64, "Required for stages with reasons (a reason key)"), AfterValidator(plain_text)] | None
    ) = None
    event_id: (
        Annotated[
            str,
            text_field(1, 200, "Idempotency key; without one, the same lead, stage, time and reason count as the same event"),
            AfterValidator(plain_text),
        ]
        | None
    ) = None
    actor: Annotated[str, text_field(0, 200, "Who recorded it (a user or a system)"), AfterValidator(plain_text)] | None = None


class FeedbackOut(_Out):
    event_id: str
    lead_id: str
    stage: str
    occurred_at: datetime
    reason: str | None
    actor: str | None
    created: bool = Field(description="False when this event_id was recorded before (nothing was written)")


class StageOut(_Out):
    stage: str
    name: str
    occurred_at: datetime
    reason: str | None
    source: str = Field(description="`import` (canonical data) or `feedback` (recorded through the API)")


class EventOut(_Out):
    type: str
    label: str = Field(description="The event type in the plain words of the definitions")
    occurred_at: datetime
    value: float | None
    source: str = Field(description="`import` (canonical data) or `api` (sent through POST /v1/events)")


class LatestScoreOut(_Out):
    score: float
    mql_passed: bool
    model: StoredModelRef
    definitions_version: str
    scored_at: datetime
    result: StoredScoreOut


class LeadRecordOut(_Out):
    """Who the lead is, how it moved through the funnel, and its latest score with the reasons."""

    lead_id: str
    known: bool = Field(description="Whether the feature store knows this lead")
    attributes: dict[str, Value]
    stages: list[StageOut]
    events: list[EventOut] = Field(description="The most recent engagement events (at most 50), newest first")
    latest_score: LatestScoreOut | None


class DefinitionsOut(_Out):
    version: str = Field(description="<version>+<first 12 hex of the sha256 of the content>")
    fingerprint: str = Field(description="Digest of what binds a model (label, funnel, ICP, events, features)")
    definitions: dict[str, Any]


class ModelOut(_Out):
    """The model scoring now: the champion, or in a cold start the team's points rules (with the reason)."""

    name: str
    version: str
    kind: Literal["learned", "rules"]
    calibrated: bool
    algorithm: str = Field(description="The bundle's model kind: lightgbm, logreg or points")
    reason: str | None = Field(default=None, description="Why no registered champion scores (cold start)")
    alias: str | None
    definitions_version: str | None
    fingerprint: str | None
    feature_service: str | None
    trained_at: str | None
    run_id: str | None
    metrics: dict[str, float]
    loaded_at: datetime
    drift: dict[str, Any] | None = Field(
        default=None,
        description="What training saw of drift (newest period against the history the model learnt from): "
        "base rate, PSI and out-of-range share per feature, and warnings in words; None for the points rules",
    )


class HealthOut(_Out):
    status: str


class ReadyOut(_Out):
    """`ready`: a champion that fits the definitions scores. In a cold start the service still answers
    (200) with the team's points rules, and `reason` says so and why."""

    ready: bool
    reason: str | None = None
    model: ModelRef | None = None
    definitions_version: str


class ErrorBody(_Out):
    code: str = Field(description="Machine-readable: unauthorized, not_found, invalid_request, ...")
    message: str = Field(description="What is wrong and where")


class ErrorOut(_Out):
    """Every error answer has this shape."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "not_found",
                        "message": "Lead 'L-404' is unknown to the feature store and no attributes were given",
                    }
                }
            ]
        },
    )

    error: ErrorBody

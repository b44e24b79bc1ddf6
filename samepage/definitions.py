"""The shared definitions: one loader, validated into pydantic models.

`load_definitions` is the only way the rest of samepage reads `configs/definitions.yaml`;
it refuses a bad file with a `DefinitionsError` naming the key and the problem.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Key = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class DefinitionsError(ValueError):
    """A definitions file that cannot be used; the message names the file, key and problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Owner(_Strict):
    name: str
    role: str


class ChangelogEntry(_Strict):
    version: str
    date: str
    changes: str
    by: list[str] = []


class Reason(_Strict):
    key: Key
    label: str


class Stage(_Strict):
    key: Key
    name: str
    owner: Literal["marketing", "sales"]
    entry: str = Field(min_length=1, description="Entry criteria in words")
    off_funnel: bool = False
    reasons: list[Reason] = []

    @model_validator(mode="after")
    def _unique_reasons(self) -> Stage:
        _no_duplicates([r.key for r in self.reasons], f"stages.{self.key}.reasons")
        return self


class Label(_Strict):
    target_stage: Key
    window_days: int = Field(gt=0, le=3650)
    as_of_stage: Key | None = None


class Range(_Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class Personas(_Strict):
    seniorities: list[str] = []
    departments: list[str] = []
    titles_contain: list[str] = []


class ICP(_Strict):
    industries: list[str] = []
    employees: Range = Range()
    countries: list[str] = []
    personas: Personas = Personas()


class Criterion(_Strict):
    """A required MQL criterion: one field checked against allowed values or bounds."""

    key: Key
    description: str
    field: str
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    if_missing: Literal["met", "not_met"] = "met"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _has_rule(self) -> Criterion:
        if self.in_ is None and self.not_in is None and self.min is None and self.max is None:
            raise ValueError("needs one of in, not_in, min or max")
        return self


class MQL(_Strict):
    threshold: float = Field(ge=0.0, le=1.0)
    criteria: list[Criterion] = []


class Capacity(_Strict):
    reps: int = Field(gt=0)
    mqls_per_rep_per_week: int = Field(gt=0)

    @property
    def mqls_per_week(self) -> int:
        return self.reps * self.mqls_per_rep_per_week


class SLA(_Strict):
    mql_follow_up_hours: float = Field(gt=0)
    capacity: Capacity


class EventType(_Strict):
    key: Key
    label: str
    channel: str


FeatureKind = Literal["attribute", "event_count", "distinct_channels", "recency", "age", "icp_match"]


class Feature(_Strict):
    key: Key
    kind: FeatureKind
    label: str = Field(min_length=1, description="Plain words both teams read in explanations")
    group: str = "other"
    type: Literal["category", "number", "boolean"] | None = None
    source: str | None = Field(default=None, description="Lead column, for attributes (default: key)")
    event_type: Key | None = None
    window_days: int | None = Field(default=None, gt=0, le=3650)
    match: Literal["industry", "employees", "country", "persona"] | None = None
    direction: Literal["up", "down"] | None = None
    actionable: bool = Field(
        default=False, description="Marketing can change it (one more of an event): only these appear in `mql.to_pass`"
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> Feature:
        needs: dict[str, tuple[str, ...]] = {
            "attribute": ("type",),
            "event_count": ("event_type", "window_days"),
            "distinct_channels": ("window_days",),
            "icp_match": ("match",),
        }
        for name in needs.get(self.kind, ()):
            if getattr(self, name) is None:
                raise ValueError(f"kind {self.kind!r} needs {name!r}")
        if self.actionable and (self.kind != "event_count" or self.direction != "up"):
            # a next step is one more event; it must be one that never lowers the score
            raise ValueError(
                f"actionable: only an event count with direction up can be (one more event is the next step); "
                f"{self.key!r} is kind {self.kind!r}, direction {self.direction}"
            )
        return self

    @property
    def column(self) -> str:
        """The lead column an attribute feature reads."""
        return self.source or self.key

    @property
    def is_categorical(self) -> bool:
        return self.kind == "attribute" and self.type == "category"


GradeLetter = Literal["A", "B", "C", "D"]
GRADE_LETTERS: tuple[GradeLetter, ...] = ("A", "B", "C", "D")


class Grade(_Strict):
    """One score band: scores in [min, max) get the grade (the top band includes its max, 1.0)."""

    grade: GradeLetter
    min: float = Field(ge=0.0, le=1.0)
    max: float = Field(ge=0.0, le=1.0)
    description: str = Field(min_length=1, description="What the grade means, in words both teams read")

    @model_validator(mode="after")
    def _ordered(self) -> Grade:
        if self.min >= self.max:
            raise ValueError(f"grade {self.grade}: min {self.min} must be below max {self.max}")
        return self


def _check_grades(grades: list[Grade]) -> None:
    """A to D once each, A the highest band, together covering [0, 1] without a gap or an overlap."""
    letters = [g.grade for g in grades]
    if sorted(letters) != list(GRADE_LETTERS):
        raise ValueError(f"give each of the grades {list(GRADE_LETTERS)} exactly once (got {letters})")
    bands = sorted(grades, key=lambda g: g.min)
    if [g.grade for g in reversed(bands)] != list(GRADE_LETTERS):
        raise ValueError("A must be the highest band, then B, C and D the lowest")
    if bands[0].min != 0.0:
        raise ValueError(f"grade {bands[0].grade} starts at {bands[0].min}: the bands must start at 0")
    if bands[-1].max != 1.0:
        raise ValueError(f"grade {bands[-1].grade} ends at {bands[-1].max}: the bands must end at 1")
    for low, high in zip(bands, bands[1:], strict=False):
        if low.max < high.min:
            raise ValueError(f"gap between grade {low.grade} (up to {low.max}) and grade {high.grade} (from {high.min})")
        if low.max > high.min:
            raise ValueError(f"grade {low.grade} (up to {low.max}) overlaps grade {high.grade} (from {high.min})")


@dataclass(frozen=True)
class StageProblem:
    """What `Definitions.stage_problem` found: the field at fault ("stage" or "reason") and why."""

    field: Literal["stage", "reason"]
    message: str


PointsValue = str | int | float | bool


class PointsScale(_Strict):
    """How points read as a likelihood before outcomes exist (the scorecard convention).

    `points_at_even_odds` points mean a 50% chance; every `points_per_doubling` more points double
    the odds. So log-odds = (points - points_at_even_odds) * ln 2 / points_per_doubling.
    """

    points_at_even_odds: float = 60.0
    points_per_doubling: float = Field(20.0, gt=0)


class PointsRule(_Strict):
    """One manual scoring rule over one feature key, as marketing automation applies it.

    Either a condition worth `points` (`in` a list of values, or `at_least`/`at_most` bounds), or
    `per_unit` points for each full `unit` of the value, at most `max_units` units. A missing value
    scores nothing.
    """

    feature: Key
    label: str | None = Field(default=None, description="The rule in words (default: from the feature)")
    points: float | None = None
    in_: list[PointsValue] | None = Field(default=None, alias="in", min_length=1)
    at_least: float | None = None
    at_most: float | None = None
    per_unit: float | None = None
    unit: float = Field(1.0, gt=0)
    max_units: float | None = Field(default=None, gt=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_rule(self) -> PointsRule:
        condition = self.in_ is not None or self.at_least is not None or self.at_most is not None
        if self.per_unit is not None:
            if condition or self.points is not None:
                raise ValueError("per_unit rules take no points, in, at_least or at_most")
        elif not condition:
            raise ValueError("needs per_unit, or points with in, at_least or at_most")
        elif self.points is None:
            raise ValueError("a condition (in, at_least, at_most) needs points")
        elif self.in_ is not None and (self.at_least is not None or self.at_most is not None):
            raise ValueError("use either in or at_least/at_most, not both")
        elif self.at_least is not None and self.at_most is not None and self.at_least > self.at_most:
            raise ValueError(f"at_least {self.at_least} is above at_most {self.at_most}")
        if self.per_unit is None and (self.max_units is not None or self.unit != 1.0):
            raise ValueError("unit and max_units go with per_unit")
        return self

    @property
    def numeric(self) -> bool:
        """Whether the rule reads the value as a number (bounds or units), not as one of `in`."""
        return self.in_ is None

    def describe(self, feature_label: str) -> str:
        """The rule in words, for logs and the lead page."""
        if self.label:
            return self.label
        if self.per_unit is not None:
            per = "each" if self.unit == 1.0 else f"every {self.unit:g}"
            cap = f", at most {self.max_units:g} counted" if self.max_units is not None else ""
            return f"{feature_label}: {self.per_unit:+g} points for {per}{cap}"
        if self.in_ is not None:
            return f"{feature_label} is {' or '.join(str(v) for v in self.in_)}: {self.points:+g} points"
        bounds = [f"at least {self.at_least:g}"] if self.at_least is not None else []
        bounds += [f"at most {self.at_most:g}"] if self.at_most is not None else []
        return f"{feature_label} {' and '.join(bounds)}: {self.points:+g} points"


class Points(_Strict):
    """The team's manual scoring rules over the features (the baseline and the cold-start scorer)."""

    scale: PointsScale = PointsScale()
    rules: list[PointsRule] = Field(min_length=1)


class Definitions(_Strict):
    version: str = Field(min_length=1)
    name: str = "samepage funnel"
    owners: dict[Literal["marketing", "sales"], Owner]
    changelog: list[ChangelogEntry] = Field(min_length=1)
    stages: list[Stage]
    label: Label
    icp: ICP
    mql: MQL
    sla: SLA
    event_types: list[EventType] = []
    features: list[Feature] = Field(min_length=1)
    points: Points | None = None
    grades: list[Grade] | None = Field(default=None, description="Score bands A-D (None: bands around the MQL threshold)")

    # Set by the loader: the canonical content's digest (see `version_string`).
    digest: str = Field(default="", exclude=True)

    @field_validator("grades")
    @classmethod
    def _grade_bands(cls, grades: list[Grade] | None) -> list[Grade] | None:
        if grades is not None:
            _check_grades(grades)
        return grades

    @model_validator(mode="after")
    def _cross_checks(self) -> Definitions:
        if set(self.owners) != {"marketing", "sales"}:
            raise ValueError("owners: both marketing and sales must sign off")
        stage_keys = [s.key for s in self.stages]
        _no_duplicates(stage_keys, "stages")
        _no_duplicates([e.key for e in self.event_types], "event_types")
        _no_duplicates([f.key for f in self.features], "features")
        for field_name in ("target_stage", "as_of_stage"):
            value = getattr(self.label, field_name)
            if value is not None and value not in stage_keys:
                raise ValueError(f"label.{field_name}: unknown stage {value!r} (stages are {stage_keys})")
        if self.stage(self.label.target_stage).off_funnel:
            raise ValueError(f"label.target_stage: {self.label.target_stage!r} is off-funnel")
        event_keys = {e.key for e in self.event_types}
        for f in self.features:
            if f.event_type is not None and f.event_type not in event_keys:
                raise ValueError(f"features.{f.key}.event_type: unknown event type {f.event_type!r}")
        for i, rule in enumerate(self.points.rules if self.points else []):
            problem = _rule_problem(rule, {f.key: f for f in self.features})
            if problem:
                raise ValueError(f"points.rules[{i}] ({rule.feature}): {problem}")
        return self

    # -- lookups ----------------------------------------------------------------------------
    def stage(self, key: str) -> Stage:
        for s in self.stages:
            if s.key == key:
                return s
        raise KeyError(key)

    @property
    def funnel(self) -> list[Stage]:
        return [s for s in self.stages if not s.off_funnel]

    def funnel_rank(self, key: str) -> int | None:
        """Position in the ordered funnel, or None for an off-funnel or unknown stage."""
        for i, s in enumerate(self.funnel):
            if s.key == key:
                return i
        return None

    def stages_at_or_after(self, key: str) -> list[str]:
        rank = self.funnel_rank(key)
        if rank is None:
            raise KeyError(key)
        return [s.key for s in self.funnel[rank:]]

    def stage_problem(self, stage: str | None, reason: str | None) -> StageProblem | None:
        """THE stage/reason rule: what is wrong with a stage record, and in which field; None when fine.

        A stage must be one of `stages`; a stage with reasons needs one of its own. A missing value
        is None or "" (callers turn pandas' NA into None first).
        """
        keys = [s.key for s in self.stages]
        if not stage or stage not in keys:
            shown = repr(stage) if stage else "(empty)"
            return StageProblem("stage", f"unknown stage {shown} is not one of the definitions' stages {keys}")
        allowed = [r.key for r in self.stage(stage).reasons]
        if allowed and not reason:
            return StageProblem("reason", f"stage {stage!r} needs a reason, one of {allowed}")
        if allowed and reason not in allowed:
            return StageProblem("reason", f"unknown reason {reason!r} is not a reason for {stage!r}; use one of {allowed}")
        return None

    def check_stage(self, stage: str, reason: str | None) -> str | None:
        """Why a (stage, reason) pair is not acceptable as a stage record, or None (`stage_problem`'s message)."""
        problem = self.stage_problem(stage, reason)
        return None if problem is None else problem.message

    def feature(self, key: str) -> Feature:
        return self.features_by_key[key]  # KeyError for an unknown key

    @cached_property
    def features_by_key(self) -> dict[str, Feature]:
        """The features by key, made once (serving looks features up for every contribution it explains)."""
        return {f.key: f for f in reversed(self.features)}  # the first of a key, as a search would find

    @property
    def grade_bands(self) -> list[Grade]:
        """The file's grades, A first; without any, bands around the MQL threshold (B starts at it)."""
        if self.grades is not None:
            return sorted(self.grades, key=lambda g: -g.min)
        t = self.mql.threshold
        return [  # constructed, not validated: a threshold of 0 or 1 leaves a band empty, which is fine here
            Grade.model_construct(grade="A", min=(1 + t) / 2, max=1.0, description="Well above the MQL threshold"),
            Grade.model_construct(grade="B", min=t, max=(1 + t) / 2, description="At or above the MQL threshold"),
            Grade.model_construct(grade="C", min=t / 2, max=t, description="Below the MQL threshold, at least half of it"),
            Grade.model_construct(grade="D", min=0.0, max=t / 2, description="Under half the MQL threshold"),
        ]

    def grade(self, score: float) -> GradeLetter:
        """The grade whose band holds `score` (bands are [min, max); 1.0 is in the top band)."""
        return self.grades_of([score])[0]

    def grades_of(self, scores: Sequence[float]) -> list[GradeLetter]:
        """`grade` of each score, the bands made once."""
        bands = [(g.min, g.grade) for g in self.grade_bands]
        lowest = GRADE_LETTERS[-1]
        return [next((grade for low, grade in bands if score >= low), lowest) for score in scores]

    @property
    def actionable_features(self) -> list[Feature]:
        return [f for f in self.features if f.actionable]

    @property
    def feature_keys(self) -> list[str]:
        return [f.key for f in self.features]

    @property
    def feature_labels(self) -> dict[str, str]:
        return {f.key: f.label for f in self.features}

    def attribute_label(self, column: str) -> str:
        """A lead column in the definitions' words: the label of the attribute feature reading it, else the
        column spelled out ("job_title" -> "Job title")."""
        return self.attribute_labels.get(column, column.replace("_", " ").capitalize())

    @cached_property
    def attribute_labels(self) -> dict[str, str]:
        return {f.column: f.label for f in self.features if f.kind == "attribute"}

    def field_label(self, field: str) -> str:
        """A criterion's field (a feature or a lead attribute) in the definitions' words: the feature's label,
        else `attribute_label`."""
        feature = self.features_by_key.get(field)
        return feature.label if feature is not None else self.attribute_label(field)

    # -- versions ---------------------------------------------------------------------------
    @property
    def version_string(self) -> str:
        """`<version>+<first 12 hex of sha256 of the canonical content>` (the contract's form)."""
        return f"{self.version}+{self.digest[:12]}"

    @property
    def fingerprint(self) -> str:
        """Digest of what shapes a model's label and features; a model is bound to it.

        The MQL threshold, criteria, SLA, grades, owners and changelog, and which features are
        actionable, are left out on purpose: they can change without retraining.
        """
        return _sha256(canonical_json(self.bound_parts))[:16]

    @property
    def bound_parts(self) -> dict[str, Any]:
        """What `fingerprint` digests, part by part (the definitions preview names the part that changed)."""
        return {
            "funnel": [s.key for s in self.funnel],
            "label": self.label.model_dump(mode="json"),
            "icp": self.icp.model_dump(mode="json"),
            "event_types": [e.model_dump(mode="json") for e in self.event_types],
            "features": [f.model_dump(mode="json", exclude={"label", "group", "actionable"}) for f in self.features],
        }


def _rule_problem(rule: PointsRule, features: dict[str, Feature]) -> str | None:
    """Why a points rule does not fit its feature: an unknown key, or a test the value cannot take."""
    feature = features.get(rule.feature)
    if feature is None:
        return f"unknown feature {rule.feature!r} (features are {sorted(features)})"
    yes_no = feature.kind == "icp_match" or feature.type == "boolean"
    if feature.is_categorical and rule.numeric:
        return f"{feature.key!r} is a category: give the values it scores with `in`"
    if yes_no and rule.numeric:
        return f"{feature.key!r} is yes/no: use `in: [true]` or `in: [false]`"
    if yes_no and any(not isinstance(v, bool) for v in rule.in_ or []):
        return f"{feature.key!r} is yes/no: `in` takes true or false"
    if not feature.is_categorical and not yes_no and not rule.numeric:
        return f"{feature.key!r} is a number: use at_least/at_most or per_unit"
    return None


def canonical_json(data: Any) -> str:
    """Key order and whitespace do not matter; list order does."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _no_duplicates(keys: list[str], where: str) -> None:
    seen: set[str] = set()
    for k in keys:
        if k in seen:
            raise ValueError(f"{where}: duplicate key {k!r}")
        seen.add(k)


def _location(loc: tuple[Any, ...], data: Any) -> str:
    """Turn pydantic's location (stages, 3, key) into `stages.mql.key` where an item has a key."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
            parts.append(str(node["key"]) if isinstance(node, dict) and "key" in node else f"[{part}]")
        else:
            parts.append(str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts).replace(".[", "[")


def parse_definitions(data: Any, source: str = "<definitions>") -> Definitions:
    """Validate already-parsed YAML data; see `load_definitions`."""
    if not isinstance(data, dict):
        raise DefinitionsError(f"{source}: expected a mapping at the top level")
    try:
        defs = Definitions.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = _location(tuple(err["loc"]), data) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"  {where}: {msg}")
        raise DefinitionsError(f"{source}: invalid definitions\n" + "\n".join(problems)) from None
    return defs.model_copy(update={"digest": _sha256(canonical_json(data))})


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML silently keeps the last of two equal keys; a signed-off file must not."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_definitions(path: str | Path) -> Definitions:
    """Read, validate and version a definitions file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionsError(f"{path}: cannot read definitions ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise DefinitionsError(f"{path}: not valid YAML ({exc})") from None
    return parse_definitions(data, str(path))

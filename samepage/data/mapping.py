"""A mapping file (YAML) that turns a CRM export into the canonical tables.

The mapping accounts for every export column: the lead id, the creation time (a column, or a
fixed as-of time with the reason), attributes kept under canonical names (`renames`) with their
types and value clean-up (`missing_values`, `labels`, `types[].values`), columns left out
(`drop`, each with the reason), and an outcome column that becomes stage rows. An export column
the mapping does not mention is an error, so a new CRM field never slips into the model unseen.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from samepage.data.parsing import all_numbers, as_boolean, as_number, as_text, as_utc, bad_rows, is_blank
from samepage.data.problems import MAX_LISTED_PROBLEMS, CanonicalDataError, Problem, RowNumbers
from samepage.definitions import Definitions, UniqueKeyLoader
from samepage.tables import CanonicalTables, empty_events, empty_stages
from samepage.values import utc_timestamp

Key = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Reason = Annotated[str, Field(min_length=3, description="Why, in words a reviewer can check")]
TypeName = Literal["number", "category", "boolean"]
Scalar = str | int | float | bool


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file, key and problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreatedAt(_Strict):
    """Either the export column holding the creation time, or one fixed as-of time."""

    column: str | None = None
    as_of: AwareDatetime | None = None
    why: Reason

    @model_validator(mode="after")
    def _one_source(self) -> CreatedAt:
        if (self.column is None) == (self.as_of is None):
            raise ValueError("give exactly one of column or as_of")
        return self


def _text_keys(table: Any) -> Any:
    """YAML reads a bare Yes/No/On/Off as true/false; as an export value it must be quoted."""
    if isinstance(table, dict):
        for key in table:
            if isinstance(key, bool):
                raise ValueError(f"key {key!r}: YAML read an unquoted Yes/No/On/Off as {key}; quote it, e.g. \"Yes\"")
    return table


class TypeSpec(_Strict):
    type: TypeName
    values: dict[str, Scalar | None] = Field(default_factory=dict, description="Export value -> typed value")

    _quoted = field_validator("values", mode="before")(_text_keys)


class Outcome(_Strict):
    """An export column saying whether the lead reached `stage`; positives get a stage row."""

    column: str
    positive: list[Scalar] = Field(min_length=1)
    negative: list[Scalar] = Field(min_length=1)
    stage: Key
    reason: Key | None = Field(default=None, description="For a stage that needs a reason")
    days_after_created: float = Field(ge=0, description="Stage row time: created_at + this")
    why: Reason


class Mapping(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    lead_id: str
    created_at: CreatedAt
    entry_stage: Key = Field("lead", description="Every lead gets this stage row at created_at")
    missing_values: list[str] = Field(default_factory=list, description="Text meaning 'not given' in any column")
    renames: dict[str, Key]
    types: dict[str, TypeName | TypeSpec] = Field(default_factory=dict)
    labels: dict[str, dict[str, str | None]] = Field(default_factory=dict)
    drop: dict[str, Reason] = Field(default_factory=dict)
    outcome: Outcome | None = None

    @field_validator("labels", mode="before")
    @classmethod
    def _quoted_labels(cls, labels: Any) -> Any:
        for table in labels.values() if isinstance(labels, dict) else ():
            _text_keys(table)
        return labels

    @model_validator(mode="after")
    def _consistent(self) -> Mapping:
        targets = list(self.renames.values())
        for target in {t for t in targets if targets.count(t) > 1}:
            raise ValueError(f"renames: two columns become {target!r}")
        for reserved in ("lead_id", "created_at"):
            if reserved in targets:
                raise ValueError(f"renames: {reserved!r} is set by the `{reserved}` key, not a rename")
        special = {self.lead_id, self.created_at.column, self.outcome.column if self.outcome else None}
        for column in self.renames:
            if column in self.drop:
                raise ValueError(f"renames.{column}: also in drop; keep it or drop it")
            if column in special:
                raise ValueError(f"renames.{column}: is the lead id, creation time or outcome column")
        for column in self.drop:
            if column in special:
                raise ValueError(f"drop.{column}: is the lead id, creation time or outcome column")
        for section in ("types", "labels"):
            for column in getattr(self, section):
                if column not in self.renames:
                    raise ValueError(f"{section}.{column}: not a kept column (add it to renames)")
        return self

    def type_of(self, column: str) -> TypeSpec | None:
        spec = self.types.get(column)
        return TypeSpec(type=spec) if isinstance(spec, str) else spec

    @property
    def columns(self) -> set[str]:
        """Every export column the mapping names."""
        named = {self.lead_id, *self.renames, *self.drop}
        if self.created_at.column:
            named.add(self.created_at.column)
        if self.outcome:
            named.add(self.outcome.column)
        return named

    def check(self, defs: Definitions) -> list[str]:
        """Problems using this mapping with these definitions (unknown stages, missing reasons).

        The stage rows it makes are checked by the definitions' own rule, as every stage record is.
        """
        wanted: list[tuple[str, str, str | None]] = [("entry_stage", self.entry_stage, None)]
        if self.outcome:
            wanted.append(("outcome", self.outcome.stage, self.outcome.reason))
        problems: list[str] = []
        for where, stage, reason in wanted:
            problem = defs.stage_problem(stage, reason)
            if problem is not None:
                key = f"{where}.{problem.field}" if where == "outcome" else where
                problems.append(f"{key}: {problem.message}")
        return problems

    def summary(self) -> str:
        when = f"column {self.created_at.column!r}" if self.created_at.column else f"fixed as-of {self.created_at.as_of}"
        return (
            f"mapping {self.name!r}: {len(self.renames)} columns kept, {len(self.drop)} left out; "
            f"created_at from {when}"
        )


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file; `MappingError` names the key that is wrong."""
    path = Path(path)
    try:
        # The definitions' loader refuses repeated keys (YAML would keep the last one silently).
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise MappingError(f"{path}: expected a mapping of keys at the top level")
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            # A union (short type name or {type: ...} table): report only the form that was written.
            if err["type"] == "literal_error" and isinstance(err["input"], dict):
                continue
            if err["type"] == "model_type" and isinstance(err["input"], str):
                continue
            # Drop pydantic's union-branch tags (`literal[...]`, `TypeSpec`) from the location.
            parts = [str(p) for p in err["loc"] if not str(p).startswith("literal[") and p != "TypeSpec"]
            lines.append(f"  {'.'.join(parts) or '(top level)'}: {err['msg'].removeprefix('Value error, ')}")
        raise MappingError(f"{path}: invalid mapping\n" + "\n".join(lines)) from None


def apply_mapping(df: pd.DataFrame, mapping: Mapping, source: str) -> CanonicalTables:
    """Turn an export (as read, one row per lead) into canonical leads and stage rows.

    Rows keep the export's order, so problems name the export's rows; raises
    `CanonicalDataError` with every problem found.
    """
    problems: list[Problem] = []
    rows = RowNumbers(Path(source))
    for column in sorted(set(df.columns) - mapping.columns):
        problems.append(Problem(source, "column is not in the mapping: add it to renames, or to drop with a reason", 1, column))
    absent = sorted(mapping.columns - set(df.columns))
    for column in absent:
        problems.append(Problem(source, "the mapping names this column but the file does not have it", None, column))
    if absent:
        raise CanonicalDataError(problems)

    missing = set(mapping.missing_values)
    leads = pd.DataFrame(index=df.index)
    leads["lead_id"] = as_text(df[mapping.lead_id])
    for i in leads["lead_id"].isna().to_numpy().nonzero()[0]:
        problems.append(Problem(source, "the lead id is empty", rows(int(i)), mapping.lead_id))
    if mapping.created_at.column:
        raw = df[mapping.created_at.column]
        created = as_utc(raw)
        for i in bad_rows(raw, created):
            problems.append(Problem(source, f"{raw.iloc[i]!r} is not an ISO 8601 timestamp", rows(i), mapping.created_at.column))
    else:
        created = pd.Series(utc_timestamp(mapping.created_at.as_of), index=df.index).astype("datetime64[ns, UTC]")
    leads["created_at"] = created

    for column, target in mapping.renames.items():
        text = as_text(df[column]) if not _is_typed(df[column]) else df[column]
        if missing and not _is_typed(text):
            text = text.mask(text.isin(missing).fillna(False).astype(bool))
        if column in mapping.labels:
            text = _relabel(text, mapping.labels[column])
        leads[target] = _typed(text, mapping.type_of(column), source, rows, column, problems)

    stages = empty_stages()
    if mapping.outcome:
        stages = _outcome_stages(df, leads, mapping, source, rows, problems)
    if problems:
        raise CanonicalDataError(problems)
    return CanonicalTables(leads=leads, events=empty_events(), stages=stages)


def _is_typed(values: pd.Series) -> bool:
    return values.dtype != object and not isinstance(values.dtype, pd.StringDtype)


def _relabel(text: pd.Series, labels: dict[str, str | None]) -> pd.Series:
    if _is_typed(text):
        text = text.astype("string")
    mapped = text.map(lambda v: labels.get(v, v) if isinstance(v, str) else v)
    return mapped.astype("string")


def _typed(
    values: pd.Series, spec: TypeSpec | None, source: str, rows: RowNumbers, column: str, problems: list[Problem]
) -> pd.Series:
    """Apply the column's type (and value map); values that do not fit are problems."""
    if spec is None:
        inferred: TypeName = "number" if _is_typed(values) or all_numbers(values) else "category"
        spec = TypeSpec(type=inferred)
    raw = values
    if spec.values:
        table = {str(k): v for k, v in spec.values.items()}
        values = values.map(lambda v: table.get(str(v), v) if not pd.isna(v) else v).astype("object")
    if spec.type == "category":
        return values.map(lambda v: v if pd.isna(v) else str(v)).astype("string")
    out = as_number(values) if spec.type == "number" else as_boolean(values)
    for i in bad_rows(raw, out)[:MAX_LISTED_PROBLEMS]:
        problems.append(Problem(source, f"{raw.iloc[i]!r} is not a {spec.type} (the mapping types this column)", rows(i), column))
    return out


def _matches(values: pd.Series, wanted: list[Any]) -> pd.Series:
    """Equal as text, or equal as numbers (1 matches "1" and "1.0")."""
    text = as_text(values)
    numbers = as_number(values)
    as_str = {str(w) for w in wanted if not isinstance(w, bool)} | {str(w).lower() for w in wanted if isinstance(w, bool)}
    numeric = [float(w) for w in wanted if isinstance(w, int | float) and not isinstance(w, bool)]
    return (text.isin(as_str).fillna(False) | numbers.isin(numeric)).astype(bool)


def _outcome_stages(
    df: pd.DataFrame, leads: pd.DataFrame, mapping: Mapping, source: str, rows: RowNumbers, problems: list[Problem]
) -> pd.DataFrame:
    """An entry-stage row per lead at created_at; an outcome-stage row per positive lead."""
    outcome = mapping.outcome
    assert outcome is not None
    raw = df[outcome.column]
    positive, negative = _matches(raw, outcome.positive), _matches(raw, outcome.negative)
    for i in [int(i) for i in (~positive & ~negative).to_numpy().nonzero()[0]][:MAX_LISTED_PROBLEMS]:
        shown = "empty" if is_blank(raw).iloc[i] else repr(raw.iloc[i])
        allowed = [*outcome.positive, *outcome.negative]
        problems.append(Problem(source, f"outcome {shown} is not one of {allowed}", rows(i), outcome.column))
    entry = pd.DataFrame(
        {"lead_id": leads["lead_id"], "stage": mapping.entry_stage, "occurred_at": leads["created_at"], "reason": None}
    )
    reached = leads.loc[positive.to_numpy()]
    later = pd.DataFrame(
        {
            "lead_id": reached["lead_id"],
            "stage": outcome.stage,
            "occurred_at": reached["created_at"] + timedelta(days=outcome.days_after_created),
            "reason": outcome.reason,
        }
    )
    stages = pd.concat([entry, later], ignore_index=True)
    return stages.astype(empty_stages().dtypes.to_dict())


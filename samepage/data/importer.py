"""`samepage import`: read canonical (or mapped) lead, event and stage files into the workspace.

Contract: every file is validated in full first and all problems are reported together (file,
row as a person counts it, column); only a clean set is merged, through `write_tables`, so a
failed import leaves the workspace exactly as it was.

Merge semantics:
- leads are upserted by `lead_id`: a known lead takes the file's values for the file's columns
  (an empty cell means "now missing") and keeps its other columns; new columns are allowed.
- events and stages are appended; rows equal to one already there (or to another in the file)
  are dropped, so importing the same files twice changes nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from samepage.definitions import Definitions
from samepage.settings import Settings
from samepage.tables import (
    LEAD_KEYS,
    CanonicalTables,
    empty_events,
    empty_stages,
    has_data,
    read_tables,
    write_tables,
)

MAX_LISTED_PROBLEMS = 20
AttributeKind = str  # "number" | "boolean" | "category"
_TRUE = {"true", "yes", "y", "1", "1.0"}
_FALSE = {"false", "no", "n", "0", "0.0"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file; `row` counts like a person reading the file."""

    file: str
    message: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return f"{where}: {self.message}"


class CanonicalDataError(ValueError):
    """Input that cannot be imported; `.problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = [f"  - {p}" for p in problems[:MAX_LISTED_PROBLEMS]]
        more = len(problems) - len(shown)
        if more > 0:
            shown.append(f"  ... and {more} more")
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"nothing was imported: {len(problems)} {noun} found\n" + "\n".join(shown))


@dataclass
class ImportSummary:
    """What an import changed in the workspace."""

    leads_added: int = 0
    leads_updated: int = 0
    events_added: int = 0
    events_duplicate: int = 0
    stages_added: int = 0
    stages_duplicate: int = 0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"leads: {self.leads_added} added, {self.leads_updated} updated",
            f"events: {self.events_added} added, {self.events_duplicate} already there",
            f"stages: {self.stages_added} added, {self.stages_duplicate} already there",
            *self.notes,
        ]

    def __str__(self) -> str:
        return "; ".join(self.lines())


# -- reading ---------------------------------------------------------------------------------


class RowNumbers:
    """Maps a frame position to the row a person sees: header is row 1 in a CSV."""

    def __init__(self, path: Path) -> None:
        self.offset = 2 if path.suffix.lower() == ".csv" else 1

    def __call__(self, position: int) -> int:
        return position + self.offset


def read_file(path: Path, problems: list[Problem]) -> pd.DataFrame | None:
    """Read a CSV (UTF-8, header row; cells kept as text) or Parquet file; None when unreadable."""
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        problems.append(Problem(name, f"unknown file type {suffix!r}: use .csv or .parquet"))
        return None
    if not path.is_file():
        problems.append(Problem(name, "file not found"))
        return None
    try:
        if suffix == ".csv":
            # Text in, so the validators see what the file says ("007" stays "007").
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
            )
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        problems.append(Problem(name, f"not UTF-8 text (byte {exc.start} cannot be decoded)"))
        return None
    except pd.errors.EmptyDataError:
        problems.append(Problem(name, "the file is empty (no header row)"))
        return None
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types for a bad file
        problems.append(Problem(name, f"cannot read the file: {exc}".strip()))
        return None
    header = _csv_header(path) if suffix == ".csv" else [str(c) for c in frame.columns]
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicated = sorted({c.strip() for c in header if [h.strip() for h in header].count(c.strip()) > 1})
    for column in duplicated:
        problems.append(Problem(name, "column appears more than once in the header", 1, column))
    return frame.reset_index(drop=True)


def _csv_header(path: Path) -> list[str]:
    """The header as written: pandas renames a repeated column to `name.1`, hiding the repeat."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def _require_columns(frame: pd.DataFrame, required: list[str], file: str, problems: list[Problem]) -> bool:
    missing = [c for c in required if c not in frame.columns]
    for column in missing:
        problems.append(Problem(file, f"required column is missing (columns are {list(frame.columns)})", None, column))
    return not missing


# -- value parsing (shared with samepage.data.mapping) --------------------------------------------


def is_blank(values: pd.Series) -> pd.Series:
    """Missing cells: NA, or text that is only whitespace."""
    blank = values.isna()
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        blank |= values.astype("string").str.strip().eq("").fillna(True)
    return blank.astype(bool)


def as_text(values: pd.Series) -> pd.Series:
    """Stripped text (pandas string dtype), blanks as NA."""
    text = values.astype("string").str.strip()
    return text.mask(is_blank(values))


def as_utc(values: pd.Series) -> pd.Series:
    """ISO 8601 timestamps to datetime64[ns, UTC]; no offset means UTC; unparseable → NaT."""
    if is_datetime64_any_dtype(values):
        series = values if values.dt.tz is not None else values.dt.tz_localize("UTC")
        try:
            return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        except (OverflowError, pd.errors.OutOfBoundsDatetime):
            # Parquet can hold years pandas' nanoseconds cannot (e.g. 3000): report those rows.
            values = series.map(lambda v: v.isoformat() if not pd.isna(v) else None)
    return pd.to_datetime(as_text(values), utc=True, format="ISO8601", errors="coerce").astype(
        "datetime64[ns, UTC]"
    )


def as_number(values: pd.Series) -> pd.Series:
    """Numbers to float64; text that is not a finite number → NaN (callers report it)."""
    if is_numeric_dtype(values) and not is_bool_dtype(values):
        out = values.astype("float64")
    else:
        parsed = pd.to_numeric(as_text(values), errors="coerce")
        out = pd.Series(parsed.to_numpy(dtype="float64", na_value=np.nan), index=values.index)
    return out.where(np.isfinite(out))


def as_boolean(values: pd.Series) -> pd.Series:
    """true/false, yes/no, 1/0 to pandas' nullable boolean; anything else → NA."""
    if is_bool_dtype(values):
        return values.astype("boolean")
    text = as_text(values).str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(_TRUE).fillna(False).astype(bool)] = True
    out[text.isin(_FALSE).fillna(False).astype(bool)] = False
    return out


def bad_rows(raw: pd.Series, parsed: pd.Series) -> list[int]:
    """Positions where the file had a value that did not parse."""
    mask = ~is_blank(raw) & parsed.isna()
    return [int(i) for i in np.flatnonzero(mask.to_numpy())]


def attribute_kind(values: pd.Series) -> AttributeKind:
    """number when every present value is numeric, boolean for a boolean column, else category."""
    if is_bool_dtype(values):
        return "boolean"
    if is_numeric_dtype(values):
        return "number"
    if isinstance(values.dtype, pd.StringDtype):
        # Already typed text (a mapping's category, or the workspace's own column).
        return "category"
    present = ~is_blank(values)
    if present.any() and as_number(values)[present].notna().all():
        return "number"
    return "category"


def coerce(values: pd.Series, kind: AttributeKind) -> pd.Series:
    if kind == "number":
        return as_number(values)
    if kind == "boolean":
        return as_boolean(values)
    if is_numeric_dtype(values) and not is_bool_dtype(values):
        return values.map(_number_text).astype("string")
    return as_text(values)


def _number_text(value: float) -> str | None:
    """A number going into a text column: 250.0 reads better as "250"."""
    if pd.isna(value):
        return None
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# -- validation ------------------------------------------------------------------------------


def validate_leads(
    frame: pd.DataFrame, file: str, rows: RowNumbers, known_kinds: dict[str, AttributeKind], problems: list[Problem]
) -> pd.DataFrame | None:
    """Canonical leads: lead_id unique and present, created_at ISO 8601, attributes typed.

    `known_kinds` are the workspace's column types; a file must agree with them.
    """
    if not _require_columns(frame, LEAD_KEYS, file, problems):
        return None
    if frame.empty:
        problems.append(Problem(file, "the file has a header but no leads"))
        return None
    out = pd.DataFrame(index=frame.index)
    ids = as_text(frame["lead_id"])
    for blank in np.flatnonzero(ids.isna().to_numpy()):
        problems.append(Problem(file, "lead_id is empty", rows(int(blank)), "lead_id"))
    first_seen: dict[str, int] = {}
    for i, lead_id in enumerate(ids.tolist()):
        if pd.isna(lead_id):
            continue
        if lead_id in first_seen:
            msg = f"duplicate lead_id {lead_id!r} (rows {rows(first_seen[lead_id])} and {rows(i)})"
            problems.append(Problem(file, msg, rows(i), "lead_id"))
        else:
            first_seen[lead_id] = i
    out["lead_id"] = ids
    created = as_utc(frame["created_at"])
    for bad in np.flatnonzero(created.isna().to_numpy()):
        value = frame["created_at"].iloc[bad]
        msg = "created_at is empty" if is_blank(frame["created_at"]).iloc[bad] else (
            f"created_at {value!r} is not an ISO 8601 timestamp (e.g. 2026-01-05T10:00:00Z)"
        )
        problems.append(Problem(file, msg, rows(int(bad)), "created_at"))
    out["created_at"] = created
    for column in frame.columns:
        if column in LEAD_KEYS:
            continue
        kind = known_kinds.get(column) or attribute_kind(frame[column])
        values = coerce(frame[column], kind)
        if kind != "category":
            for i in bad_rows(frame[column], values)[:MAX_LISTED_PROBLEMS]:
                msg = f"{frame[column].iloc[i]!r} is not a {kind} (the workspace keeps {column} as {kind})"
                problems.append(Problem(file, msg, rows(i), column))
        out[column] = values
    return out


def _dated_rows(
    frame: pd.DataFrame,
    file: str,
    rows: RowNumbers,
    lead_ids: set[str] | None,
    problems: list[Problem],
    kind: str,
    required: list[str],
    template: pd.DataFrame,
) -> pd.DataFrame | None:
    """What events and stages share: required and unknown columns, known lead ids, timestamps."""
    if not _require_columns(frame, required, file, problems):
        return None
    columns = list(template.columns)
    for column in [c for c in frame.columns if c not in columns]:
        problems.append(Problem(file, f"unknown {kind} column ({kind}s have {columns})", 1, column))
    out = pd.DataFrame({c: pd.Series(index=frame.index, dtype=template[c].dtype) for c in columns})
    out["lead_id"] = _known_lead_ids(frame, file, rows, lead_ids, problems)
    out["occurred_at"] = _timestamps(frame, "occurred_at", file, rows, problems)
    return out


def validate_events(
    frame: pd.DataFrame, file: str, rows: RowNumbers, defs: Definitions, lead_ids: set[str] | None, problems: list[Problem]
) -> pd.DataFrame | None:
    out = _dated_rows(frame, file, rows, lead_ids, problems, "event", ["lead_id", "occurred_at", "type"], empty_events())
    if out is None:
        return None
    types = as_text(frame["type"])
    allowed = [e.key for e in defs.event_types]
    for i, value in enumerate(types.tolist()):
        if pd.isna(value) or value not in allowed:
            shown = "empty" if pd.isna(value) else repr(value)
            problems.append(Problem(file, f"event type {shown} is not one of the definitions' event_types {allowed}", rows(i), "type"))
    out["type"] = types
    if "value" in frame.columns:
        values = as_number(frame["value"])
        for i in bad_rows(frame["value"], values):
            problems.append(Problem(file, f"value {frame['value'].iloc[i]!r} is not a number", rows(i), "value"))
        out["value"] = values
    return out


def validate_stages(
    frame: pd.DataFrame, file: str, rows: RowNumbers, defs: Definitions, lead_ids: set[str] | None, problems: list[Problem]
) -> pd.DataFrame | None:
    out = _dated_rows(frame, file, rows, lead_ids, problems, "stage", ["lead_id", "stage", "occurred_at"], empty_stages())
    if out is None:
        return None
    stages = as_text(frame["stage"])
    reasons = as_text(frame["reason"]) if "reason" in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="string")
    stage_keys = [s.key for s in defs.stages]
    for i, (stage, reason) in enumerate(zip(stages.tolist(), reasons.tolist(), strict=True)):
        if pd.isna(stage) or stage not in stage_keys:
            shown = "empty" if pd.isna(stage) else repr(stage)
            problems.append(Problem(file, f"stage {shown} is not one of the definitions' stages {stage_keys}", rows(i), "stage"))
            continue
        allowed = [r.key for r in defs.stage(stage).reasons]
        if allowed and pd.isna(reason):
            problems.append(Problem(file, f"stage {stage!r} needs a reason, one of {allowed}", rows(i), "reason"))
        elif allowed and reason not in allowed:
            problems.append(Problem(file, f"reason {reason!r} is not a reason for {stage!r}; use one of {allowed}", rows(i), "reason"))
    out["stage"] = stages
    out["reason"] = reasons
    return out


def _known_lead_ids(
    frame: pd.DataFrame, file: str, rows: RowNumbers, lead_ids: set[str] | None, problems: list[Problem]
) -> pd.Series:
    ids = as_text(frame["lead_id"])
    for i, lead_id in enumerate(ids.tolist()):
        if pd.isna(lead_id):
            problems.append(Problem(file, "lead_id is empty", rows(i), "lead_id"))
        elif lead_ids is not None and lead_id not in lead_ids:
            problems.append(Problem(file, f"lead_id {lead_id!r} is not a known lead (not in the workspace nor the leads file)", rows(i), "lead_id"))
    return ids


def _timestamps(frame: pd.DataFrame, column: str, file: str, rows: RowNumbers, problems: list[Problem]) -> pd.Series:
    parsed = as_utc(frame[column])
    blank = is_blank(frame[column])
    for i in np.flatnonzero(parsed.isna().to_numpy()):
        msg = f"{column} is empty" if blank.iloc[i] else (
            f"{column} {frame[column].iloc[i]!r} is not an ISO 8601 timestamp (e.g. 2026-01-05T10:00:00Z)"
        )
        problems.append(Problem(file, msg, rows(int(i)), column))
    return parsed


# -- merging ---------------------------------------------------------------------------------


def _kinds(leads: pd.DataFrame) -> dict[str, AttributeKind]:
    return {c: attribute_kind(leads[c]) for c in leads.columns if c not in LEAD_KEYS}


def merge_leads(existing: pd.DataFrame, incoming: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Upsert by lead_id; returns (leads, added, updated)."""
    known = existing["lead_id"].isin(incoming["lead_id"])
    updated = int(known.sum())
    kept_columns = [c for c in existing.columns if c not in incoming.columns]
    carried = existing.loc[known, ["lead_id", *kept_columns]]
    refreshed = incoming.merge(carried, on="lead_id", how="left")
    leads = pd.concat([existing.loc[~known], refreshed], ignore_index=True)
    columns = list(existing.columns) + [c for c in incoming.columns if c not in existing.columns]
    leads = leads[columns]
    kinds = {**_kinds(existing), **{c: attribute_kind(incoming[c]) for c in incoming.columns if c not in LEAD_KEYS}}
    for column in columns:
        if column == "lead_id":
            leads[column] = leads[column].astype("string")
        elif column == "created_at":
            leads[column] = as_utc(leads[column])
        else:
            leads[column] = coerce(leads[column], kinds.get(column, "category"))
    return leads, len(incoming) - updated, updated


def _append(existing: pd.DataFrame, incoming: pd.DataFrame, template: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Append rows, dropping exact duplicates; returns (table, added, duplicates)."""
    before = len(existing)
    parts = [t.astype(template.dtypes.to_dict()) for t in (existing[template.columns], incoming[template.columns])]
    table = pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)
    added = len(table) - before
    return table, added, len(incoming) - added


# -- the command -----------------------------------------------------------------------------


def import_files(
    settings: Settings,
    defs: Definitions,
    leads: Path,
    events: Path | None = None,
    stages: Path | None = None,
    mapping: Path | None = None,
) -> ImportSummary:
    """Validate the files in full, then merge them into the workspace in one atomic write.

    With `mapping`, the leads file is a CRM export turned into canonical leads (and stage rows)
    by `samepage.data.mapping`; `events` and `stages` are then optional canonical files.
    Raises `CanonicalDataError` (nothing written) when any file has a problem.
    """
    # Imported here: samepage.data.mapping builds on this module's parsers and Problem type.
    from samepage.data.mapping import MappingError, apply_mapping, load_mapping

    problems: list[Problem] = []
    current = read_tables(settings.data_dir) if has_data(settings.data_dir) else None
    known_kinds = _kinds(current.leads) if current is not None else {}
    summary = ImportSummary()

    spec = None
    if mapping is not None:
        try:
            spec = load_mapping(mapping)
        except MappingError as exc:
            raise CanonicalDataError([Problem(str(mapping), str(exc).removeprefix(f"{mapping}: "))]) from None
        problems.extend(Problem(str(mapping), message) for message in spec.check(defs))

    raw_leads = read_file(Path(leads), problems)
    mapped_stages: pd.DataFrame | None = None
    new_leads: pd.DataFrame | None = None
    if raw_leads is not None:
        rows = RowNumbers(Path(leads))
        if spec is not None:
            try:
                mapped = apply_mapping(raw_leads, spec, str(leads))
            except CanonicalDataError as exc:
                problems.extend(exc.problems)
            else:
                new_leads = validate_leads(mapped.leads, str(leads), rows, known_kinds, problems)
                mapped_stages = mapped.stages
                summary.notes.append(spec.summary())
        else:
            new_leads = validate_leads(raw_leads, str(leads), rows, known_kinds, problems)

    # Unknown when the leads file itself could not be read: then lead ids are not checked,
    # rather than flagging every event of a lead in that file.
    lead_ids: set[str] | None = None
    if new_leads is not None:
        lead_ids = set(new_leads["lead_id"].dropna())
        if current is not None:
            lead_ids |= set(current.leads["lead_id"].astype(str))
    new_events = _optional(events, problems, lambda f, p, r: validate_events(f, p, r, defs, lead_ids, problems))
    new_stages = _optional(stages, problems, lambda f, p, r: validate_stages(f, p, r, defs, lead_ids, problems))
    if mapped_stages is not None and not problems:
        # Made by the mapping from validated leads, and its stage keys were checked above.
        new_stages = mapped_stages if new_stages is None else pd.concat([mapped_stages, new_stages], ignore_index=True)
    if problems or new_leads is None:
        raise CanonicalDataError(_in_file_order(problems) or [Problem(str(leads), "no leads could be read")])

    if current is None:
        current = CanonicalTables(leads=new_leads.iloc[0:0], events=empty_events(), stages=empty_stages())
    merged_leads, summary.leads_added, summary.leads_updated = merge_leads(current.leads, new_leads)
    merged_events, summary.events_added, summary.events_duplicate = _append(
        current.events, new_events if new_events is not None else empty_events(), empty_events()
    )
    merged_stages, summary.stages_added, summary.stages_duplicate = _append(
        current.stages, new_stages if new_stages is not None else empty_stages(), empty_stages()
    )
    write_tables(settings.data_dir, CanonicalTables(leads=merged_leads, events=merged_events, stages=merged_stages))
    return summary


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    """Files in the order first seen, each file's problems top to bottom (stable)."""
    order = {file: n for n, file in reversed(list(enumerate(p.file for p in problems)))}
    return sorted(problems, key=lambda p: (order[p.file], p.row or 0))


def _optional(
    path: Path | None, problems: list[Problem], validate: Callable[[pd.DataFrame, str, RowNumbers], pd.DataFrame | None]
) -> pd.DataFrame | None:
    if path is None:
        return None
    frame = read_file(Path(path), problems)
    if frame is None:
        return None
    return validate(frame, str(path), RowNumbers(Path(path)))

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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from samepage.data.mapping import MappingError, apply_mapping, load_mapping
from samepage.data.parsing import AttributeKind, as_number, as_text, as_utc, attribute_kind, bad_rows, coerce, is_blank, read_file
from samepage.data.problems import MAX_LISTED_PROBLEMS, CanonicalDataError, Problem, RowNumbers, in_file_order
from samepage.definitions import Definitions, StageProblem
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


# -- validation ------------------------------------------------------------------------------


def _require_columns(frame: pd.DataFrame, required: list[str], file: str, problems: list[Problem]) -> bool:
    missing = [c for c in required if c not in frame.columns]
    for column in missing:
        problems.append(Problem(file, f"required column is missing (columns are {list(frame.columns)})", None, column))
    return not missing


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
    """Canonical events: known leads, ISO 8601 times, a definitions event type, a numeric value if any."""
    out = _dated_rows(frame, file, rows, lead_ids, problems, "event", ["lead_id", "occurred_at", "type"], empty_events())
    if out is None:
        return None
    types = as_text(frame["type"])
    allowed = [e.key for e in defs.event_types]
    for i, value in enumerate(types.tolist()):
        if pd.isna(value) or value not in allowed:
            shown = "empty" if pd.isna(value) else repr(value)
            message = f"event type {shown} is not one of the definitions' event_types {allowed}"
            problems.append(Problem(file, message, rows(i), "type"))
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
    """Canonical stage rows: known leads, ISO 8601 times, and a stage/reason the definitions accept."""
    out = _dated_rows(frame, file, rows, lead_ids, problems, "stage", ["lead_id", "stage", "occurred_at"], empty_stages())
    if out is None:
        return None
    stages = as_text(frame["stage"])
    reasons = as_text(frame["reason"]) if "reason" in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="string")
    found: dict[tuple[str | None, str | None], StageProblem | None] = {}  # a file repeats few pairs
    for i, pair in enumerate(zip(_or_none(stages), _or_none(reasons), strict=True)):
        if pair not in found:
            found[pair] = defs.stage_problem(*pair)
        problem = found[pair]
        if problem is not None:
            problems.append(Problem(file, problem.message, rows(i), problem.field))
    out["stage"] = stages
    out["reason"] = reasons
    return out


def _or_none(text: pd.Series) -> list[str | None]:
    """Cells as Python values, NA as None (the definitions' rules take plain strings)."""
    return [None if pd.isna(v) else v for v in text.tolist()]


def _known_lead_ids(
    frame: pd.DataFrame, file: str, rows: RowNumbers, lead_ids: set[str] | None, problems: list[Problem]
) -> pd.Series:
    ids = as_text(frame["lead_id"])
    for i, lead_id in enumerate(ids.tolist()):
        if pd.isna(lead_id):
            problems.append(Problem(file, "lead_id is empty", rows(i), "lead_id"))
        elif lead_ids is not None and lead_id not in lead_ids:
            message = f"lead_id {lead_id!r} is not a known lead (not in the workspace nor the leads file)"
            problems.append(Problem(file, message, rows(i), "lead_id"))
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
        raise CanonicalDataError(in_file_order(problems) or [Problem(str(leads), "no leads could be read")])

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


def _optional(
    path: Path | None, problems: list[Problem], validate: Callable[[pd.DataFrame, str, RowNumbers], pd.DataFrame | None]
) -> pd.DataFrame | None:
    if path is None:
        return None
    frame = read_file(Path(path), problems)
    if frame is None:
        return None
    return validate(frame, str(path), RowNumbers(Path(path)))

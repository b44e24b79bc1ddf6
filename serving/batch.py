"""`samepage score --input F --output F`: a file of leads scored like the API scores them.

Same champion loading, same online features and overrides, same `explain` and MQL verdict as
`POST /v1/score`. CSV or Parquet in and out (by suffix). A bad file stops the run with a message
naming the file, row and field; the output appears complete or not at all (temp file + rename).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from samepage.answers import json_bytes
from samepage.definitions import Definitions
from samepage.errors import SamepageError
from samepage.records import RecordStore
from samepage.settings import Settings
from serving.explain import json_value
from serving.scorer import Champion, Scored, Scorer
from serving.writer import score_row

CHUNK = 1_000
FORMATS = (".csv", ".parquet")


class BatchError(ValueError):
    """A file that cannot be scored; the message names the file, row and field."""


@dataclass
class BatchSummary:
    n_leads: int
    n_mql: int
    output: Path
    model_version: str
    definitions_version: str
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.n_leads:,} leads ({self.n_mql:,} MQLs) → {self.output} with model v{self.model_version}, "
            f"definitions {self.definitions_version}, in {self.seconds:.1f}s"
        )


def score_file(settings: Settings, defs: Definitions, input: Path, output: Path, progress: bool = True) -> BatchSummary:
    """Score every lead of `input` and write scores, verdicts and reasons to `output`."""
    started = time.perf_counter()
    input, output = Path(input), Path(output)
    if output.suffix.lower() not in FORMATS:
        raise BatchError(f"{output}: unsupported output format {output.suffix or '(none)'}; use .csv or .parquet")
    leads = _read(input)
    store = RecordStore.from_settings(settings)
    try:
        return _score_leads(settings, defs, leads, input, output, store, progress, started)
    finally:
        store.close()


def _score_leads(
    settings: Settings,
    defs: Definitions,
    leads: pd.DataFrame,
    input: Path,
    output: Path,
    store: RecordStore,
    progress: bool,
    started: float,
) -> BatchSummary:
    scorer = Scorer(settings, defs, history=store)  # trend: each lead's latest score before this run
    scorer.refresh()
    champion = scorer.champion
    if champion is None:
        raise BatchError(f"cannot score: {scorer.reason}")
    results_all: list[Scored] = []
    attribute_columns = [c for c in leads.columns if c != "lead_id"]
    with Progress(
        TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), disable=not progress, transient=True
    ) as bar:
        task = bar.add_task("score", total=len(leads))
        for start in range(0, len(leads), CHUNK):
            chunk = leads.iloc[start : start + CHUNK]
            pairs = _pairs(chunk, attribute_columns)
            results_all += _score_chunk(scorer, champion, pairs, input, start)
            bar.advance(task, len(chunk))
    _write(pd.DataFrame(output_columns(results_all), columns=OUTPUT_COLUMNS), output)
    latest = {r.answer["lead_id"]: r for r in results_all}.values()  # of a lead given twice, its last row
    store.save_scores([score_row(r) for r in latest], {r.explanation.vocabulary for r in latest})
    return BatchSummary(
        n_leads=len(results_all),
        n_mql=sum(1 for r in results_all if r.answer["mql"]["passed"]),
        output=output,
        model_version=champion.version,
        definitions_version=defs.version_string,
        seconds=time.perf_counter() - started,
    )


OUTPUT_COLUMNS = [
    "lead_id", "score", "grade", "previous_score", "previous_at", "delta", "mql_passed", "mql_summary", "criteria_failed",
    "to_pass", "score_if", "reasons_up", "reasons_down", "base_value", "contributions", "model_name", "model_version",
    "definitions_version", "scored_at",
]


def output_columns(results: Sequence[Scored]) -> dict[str, list[Any]]:
    """Answers as the output file's columns (`OUTPUT_COLUMNS`, in order), from the explanations' arrays, not the
    contract's dicts: `score --all` writes a million rows, so no dict or DataFrame row is made per lead."""
    answers = [r.answer for r in results]
    exps = [r.explanation for r in results]
    mqls = [a["mql"] for a in answers]
    trends = [a["trend"] or _NO_TREND for a in answers]
    models = [a["model"] for a in answers]
    return {
        "lead_id": [a["lead_id"] for a in answers],
        "score": [a["score"] for a in answers],
        "grade": [a["grade"] for a in answers],
        "previous_score": [t["previous_score"] for t in trends],
        "previous_at": [t["previous_at"] for t in trends],
        "delta": [t["delta"] for t in trends],
        "mql_passed": [m["passed"] for m in mqls],
        "mql_summary": [m["summary"] for m in mqls],
        "criteria_failed": [",".join([c["key"] for c in m["criteria"] if not c["met"]]) for m in mqls],
        # JSON, like `contributions`: [{"feature", "label", "from", "to"}] for a lead that is not an MQL, else empty
        "to_pass": ["" if m.get("to_pass") is None else json_bytes(m["to_pass"]).decode() for m in mqls],
        "score_if": [m.get("score_if") for m in mqls],
        "reasons_up": ["; ".join(e.reasons_up) for e in exps],
        "reasons_down": ["; ".join(e.reasons_down) for e in exps],
        "base_value": [e.base_value for e in exps],
        "contributions": [json_bytes(e.by_contribution()).decode() for e in exps],  # {feature: contribution} by |contribution|
        "model_name": [m["name"] for m in models],
        "model_version": [m["version"] for m in models],
        "definitions_version": [a["definitions_version"] for a in answers],
        "scored_at": [a["scored_at"] for a in answers],
    }


_NO_TREND = {"previous_score": None, "previous_at": None, "delta": None}


def _first_row(path: Path) -> int:
    """Row numbers as a person counts them in the file: a CSV's header is row 1 (as `samepage import`)."""
    return 2 if path.suffix.lower() == ".csv" else 1


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise BatchError(f"{path}: unsupported input format {suffix or '(none)'}; use .csv or .parquet")
    if not path.exists():
        raise BatchError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            # Text in, typed by the feature store's own coercion (the same as API attributes).
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
        else:
            frame = pd.read_parquet(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BatchError(f"{path}: cannot read ({exc})") from None
    if "lead_id" not in frame.columns:
        raise BatchError(f"{path}: no lead_id column (columns are {list(frame.columns)})")
    ids = frame["lead_id"]
    blank = ids.isna() | (ids.astype(str).str.strip() == "")
    if blank.any():
        raise BatchError(f"{path}: row {int(blank.to_numpy().argmax()) + _first_row(path)}, column lead_id: empty")
    frame["lead_id"] = ids.astype(str).str.strip()
    return frame.reset_index(drop=True)


def _pairs(chunk: pd.DataFrame, columns: list[str]) -> list[tuple[str, dict[str, Any]]]:
    ids = chunk["lead_id"].tolist()
    values = {c: chunk[c].tolist() for c in columns}
    out = []
    for i, lead_id in enumerate(ids):
        attrs = {}
        for c in columns:
            v = json_value(values[c][i]) if not isinstance(values[c][i], str) else values[c][i]
            if v is not None:
                attrs[c] = v
        out.append((lead_id, attrs))
    return out


def _score_chunk(
    scorer: Scorer, champion: Champion, pairs: list[tuple[str, dict[str, Any]]], path: Path, offset: int
) -> list[Scored]:
    try:
        return scorer.scored(pairs, champion)
    except SamepageError:
        pass
    for i, pair in enumerate(pairs):  # the slow path finds the first bad row to name it
        try:
            scorer.score([pair], champion)
        except SamepageError as exc:
            raise BatchError(f"{path}: row {offset + i + _first_row(path)} (lead_id {pair[0]!r}): {exc.message}") from None
    first = offset + _first_row(path)
    raise BatchError(f"{path}: rows {first}-{first + len(pairs) - 1} could not be scored")


def _write(frame: pd.DataFrame, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        if output.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)

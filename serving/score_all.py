"""`samepage score --all --output F [--engine local|spark]`: every lead in the workspace, as of now.

Features come from the offline side in chunks (`features.offline`: the latest stored row at or
before now per lead, the values the online store serves), so no lead costs an online look-up.
Each chunk goes through `Scorer.score` like `POST /v1/score` (the one derivation, the one
`explain` with `pred_contrib` on all cores, the MQL verdict, `to_pass`, grade). The sink adds each
lead's trend from the lead-record store, writes the output chunk by chunk under a temporary name
(renamed into place only when complete: a killed run leaves no output) and records every lead's
latest score with the API's payload. Memory is bounded by the chunk size.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from features.offline import ChunkFeatures, Sources, lead_chunks
from samepage.definitions import Definitions
from samepage.records import RecordStore
from samepage.settings import Settings
from serving.batch import FORMATS, OUTPUT_COLUMNS, BatchError, BatchSummary, _flat
from serving.scorer import Champion, Scorer, trend
from serving.writer import score_row

CHUNK = 20_000
ENGINES = ("local", "spark")
_TEXT = pa.string()
OUTPUT_SCHEMA = pa.schema(
    [
        (c, pa.float64() if c in ("score", "previous_score", "delta", "score_if", "base_value") else _TEXT)
        if c != "mql_passed"
        else (c, pa.bool_())
        for c in OUTPUT_COLUMNS
    ]
)


def score_all(
    settings: Settings,
    defs: Definitions,
    output: Path,
    engine: str = "local",
    chunk: int = CHUNK,
    progress: bool = True,
    now: datetime | None = None,
    suggest: bool = True,
) -> BatchSummary:
    """Score every lead of the workspace as of `now` (default: now) and write `output` (CSV or Parquet).

    `suggest=False` skips the `mql.to_pass` search (every `to_pass` null): the search costs more than
    the scoring itself (`bench/score_scale.py`).
    """
    started = time.perf_counter()
    output = Path(output)
    if engine not in ENGINES:
        raise BatchError(f"--engine: {engine!r} is not one of {', '.join(ENGINES)}")
    if chunk < 1:
        raise BatchError(f"--chunk-size: {chunk} must be at least 1")
    check_output(output)
    from features.store import refresh

    refresh(settings, defs, rebuild_for_api=True)  # leads and events the API took since the last build
    when = (now or datetime.now(UTC)).astimezone(UTC)
    scorer = Scorer(settings, defs)
    scorer.refresh()
    champion = scorer.champion
    if champion is None:
        raise BatchError(f"cannot score: {scorer.reason}")
    sources = Sources.of(settings, defs)
    if engine == "spark":
        from serving.spark_engine import spark_results

        results = spark_results(settings, defs, champion, sources, when, chunk, suggest)
    else:
        results = local_results(scorer, champion, sources, when, chunk, suggest)
    store = RecordStore.from_settings(settings)
    try:
        n, n_mql = _sink(results, output, store, sources.n_leads(), progress)
    finally:
        store.close()
    return BatchSummary(
        n_leads=n,
        n_mql=n_mql,
        output=output,
        model_version=champion.version,
        definitions_version=defs.version_string,
        seconds=time.perf_counter() - started,
    )


def check_output(output: Path) -> None:
    """A clear error before any work when `output` cannot be written."""
    if output.is_dir():
        raise BatchError(f"{output}: is a directory; give a file name ending in .csv or .parquet")
    if output.suffix.lower() not in FORMATS:
        raise BatchError(f"{output}: unsupported output format {output.suffix or '(none)'}; use .csv or .parquet")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        probe = _temporary(output)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise BatchError(f"{output}: cannot write there ({exc.strerror or exc})") from None


def local_results(
    scorer: Scorer, champion: Champion, sources: Sources, now: datetime, chunk: int, suggest: bool = True
) -> Iterator[list[dict[str, Any]]]:
    """ScoreOut dicts (trend left to the sink), one list per chunk of leads, scored in this process."""
    for frame in lead_chunks(sources, scorer.defs, pd.Timestamp(now), chunk):
        yield score_frame(scorer, champion, frame, now, suggest)


def score_frame(
    scorer: Scorer, champion: Champion, frame: pd.DataFrame, now: datetime, suggest: bool = True
) -> list[dict[str, Any]]:
    """One chunk (attribute and engagement columns, as `features.offline.lead_chunks` gives) through `Scorer.score`."""
    chunk_features = ChunkFeatures(frame, scorer.defs)
    reading = dataclasses.replace(champion, online=chunk_features)
    return scorer.score([(lead_id, {}) for lead_id in chunk_features.ids], reading, suggest=suggest, now=now)


def _sink(
    results: Iterator[list[dict[str, Any]]], output: Path, store: RecordStore, total: int, progress: bool
) -> tuple[int, int]:
    """Trend, output rows and latest scores for each chunk; the output appears only once complete."""
    tmp = _temporary(output)
    n = n_mql = 0
    writer: pq.ParquetWriter | None = None
    columns = [TextColumn("scoring every lead"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    try:
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task("score", total=total)
            for chunk in results:
                previous = store.previous_scores([r["lead_id"] for r in chunk])
                for r in chunk:
                    r["trend"] = trend(r["score"], previous.get(r["lead_id"]))
                table = pa.Table.from_pandas(
                    pd.DataFrame([_flat(r) for r in chunk], columns=OUTPUT_COLUMNS), OUTPUT_SCHEMA, preserve_index=False
                )
                if output.suffix.lower() == ".csv":
                    table.to_pandas().to_csv(tmp, index=False, header=n == 0, mode="w" if n == 0 else "a")
                else:
                    writer = writer or pq.ParquetWriter(tmp, OUTPUT_SCHEMA)
                    writer.write_table(table)
                store.save_scores([score_row(r) for r in chunk])
                n += len(chunk)
                n_mql += sum(1 for r in chunk if r["mql"]["passed"])
                bar.advance(task, len(chunk))
        if writer is not None:
            writer.close()
            writer = None
        if n == 0:
            empty = pa.Table.from_pylist([], OUTPUT_SCHEMA)
            if output.suffix.lower() == ".csv":
                empty.to_pandas().to_csv(tmp, index=False)
            else:
                pq.write_table(empty, tmp)
        os.replace(tmp, output)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return n, n_mql


def _temporary(output: Path) -> Path:
    return output.with_name(f".{output.name}.{os.getpid()}.tmp")

"""`samepage score --all --output F [--engine local|spark]`: every lead in the workspace, as of now.

Features come from the offline side in chunks (`features.offline`: the latest attribute row at or
before now per lead and its engagement at now, from the activity rows counted as the online read
counts them, or from the latest engagement row; the values the online store serves), so no lead
costs an online look-up.
Each chunk goes through `Scorer.score` like `POST /v1/score` (the one derivation, the one
`explain`, the MQL verdict, `to_pass`, grade). A workspace of several chunks is scored by one
process per core: the champion travels to each once, each chunk brings its leads and their
previous scores, and each process records its chunks' latest scores and sends back only the
output rows. The sink writes the output chunk by chunk under a temporary name (renamed into place
only when complete: a killed run leaves no output) and records the latest scores of chunks scored
in this process, with the API's payload, trend included. Memory is bounded by the chunk size times
the processes.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import select
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from features.offline import (
    ChunkFeatures,
    LatestRows,
    RecentActivity,
    Sources,
    latest_engagement,
    lead_chunks,
    row_group_runs,
)
from samepage.answers import Vocabulary
from samepage.definitions import Definitions
from samepage.records import RecordStore
from samepage.settings import Settings
from serving.batch import FORMATS, OUTPUT_COLUMNS, BatchError, BatchSummary, output_columns
from serving.scorer import Champion, Scored, Scorer, refreeze, trend
from serving.writer import score_row

CHUNK = 20_000
Previous = dict[str, tuple[float, datetime]]  # lead id -> its previous (score, scored_at), for the trend
ENGINES = ("local", "spark")
POOL_CHUNKS = 8  # chunks from which scoring is spread over one process per core (fewer: ~10 s start-up costs more)
_TEXT = pa.string()
OUTPUT_SCHEMA = pa.schema(
    [
        (c, pa.float64() if c in ("score", "previous_score", "delta", "score_if", "base_value") else _TEXT)
        if c != "mql_passed"
        else (c, pa.bool_())
        for c in OUTPUT_COLUMNS
    ]
)

# zstd: half snappy's size (280 MB against 560 MB at 1M leads) in the same time; dictionaries only for
# the columns that repeat (a dictionary tried on a million distinct JSON texts is time lost).
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": ["grade", "mql_passed", "criteria_failed", "model_name", "model_version", "definitions_version",
                       "scored_at", "previous_at"],
}


def score_all(
    settings: Settings,
    defs: Definitions,
    output: Path,
    engine: str = "local",
    chunk: int = CHUNK,
    progress: bool = True,
    now: datetime | None = None,
    suggest: bool = True,
    workers: int | None = None,
) -> BatchSummary:
    """Score every lead of the workspace as of `now` (default: now) and write `output` (CSV or Parquet).

    `suggest=False` skips the `mql.to_pass` search (every `to_pass` null). `workers`: scoring processes of the local engine
    (default: one per core once the workspace holds `POOL_CHUNKS` chunks, else this process alone).
    """
    started = time.perf_counter()
    output = Path(output)
    if engine not in ENGINES:
        raise BatchError(f"--engine: {engine!r} is not one of {', '.join(ENGINES)}")
    if chunk < 1:
        raise BatchError(f"--chunk-size: {chunk} must be at least 1")
    check_output(output)
    from features.freshness import refresh

    refresh(settings, defs, rebuild_for_api=True)  # leads and events the API took since the last build
    when = (now or datetime.now(UTC)).astimezone(UTC)
    sources = Sources.of(settings, defs)
    if engine == "local" and workers is None:
        workers = (os.cpu_count() or 1) if sources.n_leads() >= POOL_CHUNKS * chunk else 1
    if engine == "local" and workers is not None and workers > 1:
        _start_fork_server()  # its imports (~2 s) go on while this process loads the champion
    scorer = Scorer(settings, defs, online=False)  # each chunk brings its features
    store = RecordStore.from_settings(settings)
    try:
        with ThreadPoolExecutor(2, thread_name_prefix="samepage-read") as reader:
            # Read while the champion loads (and the fork server imports): every lead's previous
            # score (one read, not one per chunk: trend for every lead) and, for the local engine,
            # the leads' engagement (`_engagement_of`). The first chunk waits for both.
            previous = reader.submit(store.previous_scores_all)
            engagement = None
            if engine == "local" and sources.engagement is not None:
                engagement = reader.submit(_engagement_of, sources, defs, pd.Timestamp(when), (workers or 1) <= 1)
            scorer.refresh()
            champion = scorer.champion
            if champion is None:
                raise BatchError(f"cannot score: {scorer.reason}")
            chunks: Iterator[ScoredChunk]
            if engine == "spark":
                from serving.spark_engine import spark_results

                results = spark_results(settings, defs, champion, sources, when, chunk, suggest)
                chunks = (finish(r, previous.result()) for r in results)
            else:
                chunks = local_results(scorer, champion, sources, when, chunk, suggest, previous, workers or 1, engagement)
            n, n_mql = _sink(chunks, output, store, sources.n_leads(), progress)
    finally:
        store.close()
        _stop_fork_server()  # started early: also when no chunk was scored
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


@dataclass
class ScoredChunk:
    """One chunk, scored: its output rows, its record-store rows still to save (payload as compact JSON
    text; none when a scoring process saved them itself) with the vocabularies they name, and its MQLs."""

    table: pa.Table
    rows: list[dict[str, Any]]
    n_mql: int
    vocabularies: list[Vocabulary] = dataclasses.field(default_factory=list)


def finish(results: list[Scored], previous: dict[str, tuple[float, datetime]]) -> ScoredChunk:
    """Answers with their trend, as output rows and record-store rows (where they were scored); from the
    explanations' arrays: neither the contract's contribution dicts nor its JSON are made."""
    for r in results:
        r.answer["trend"] = trend(r.answer["score"], previous.get(r.answer["lead_id"]))
    table = pa.Table.from_pydict(output_columns(results), OUTPUT_SCHEMA)
    vocabularies = list({r.explanation.vocabulary.id: r.explanation.vocabulary for r in results}.values())
    n_mql = sum(1 for r in results if r.answer["mql"]["passed"])
    return ScoredChunk(table, [score_row(r) for r in results], n_mql, vocabularies)


def local_results(
    scorer: Scorer,
    champion: Champion,
    sources: Sources,
    now: datetime,
    chunk: int,
    suggest: bool = True,
    previous: Future[Previous] | Previous | None = None,
    workers: int = 1,
    engagement: Future[pd.DataFrame | RecentActivity | None] | None = None,
) -> Iterator[ScoredChunk]:
    """Scored chunks, in order: in this process, or in `workers` processes with a few chunks in flight each.
    `previous`: every lead's previous score (or a read of them under way), for the trend; `engagement`:
    a read of the leads' engagement under way (`_engagement_of`; None from it or here: read here, or by
    the processes)."""
    defs, when = scorer.defs, pd.Timestamp(now)
    if workers <= 1:
        latest = None if engagement is None else engagement.result()
        for frame in lead_chunks(sources, defs, when, chunk, latest):
            yield finish(score_frame(scorer, champion, frame, now, suggest), _previous_of(frame, _read(previous)))
        return
    portable = dataclasses.replace(champion, online=None)  # the Feast store stays here; each chunk brings its features
    context = _start_fork_server()
    # Where the processes leave their chunks' output rows (`Spooled`); removed with the run, or by
    # the processes when this one is killed.
    spool = Path(tempfile.mkdtemp(prefix="samepage-score-all-"))
    start = (os.getpid(), scorer.settings, scorer.defs, portable, spool)
    try:
        with ProcessPoolExecutor(workers, context, initializer=_start_worker, initargs=start) as pool:
            ready = [pool.submit(_ready) for _ in range(workers)]
            # When the activity rows cannot serve, the processes read every lead's latest engagement
            # row first, a run of the file's row groups each: they have nothing else to do yet, and
            # share no GIL with this process's start-up.
            latest = engagement.result() if engagement is not None else None
            if latest is None and sources.engagement is not None:
                runs = row_group_runs(sources.engagement, workers)
                parts = [pool.submit(LatestRows.of, sources.engagement, defs, when, run) for run in runs]
                latest = LatestRows.merged([p.result() for p in parts], defs)
            pending: deque[Future[Spooled]] = deque()
            for n, frame in enumerate(lead_chunks(sources, defs, when, chunk, latest)):
                previous_rows = _previous_of(frame, _read(previous))
                pending.append(pool.submit(_score_chunk, frame, now, suggest, previous_rows, spool / f"{n}.arrow"))
                # Bounded: two chunks in flight per process, results taken in order (a slow chunk
                # leaves the other processes work to go on with while this one waits for it).
                if len(pending) > 2 * workers:
                    yield pending.popleft().result().read()
            while pending:
                yield pending.popleft().result().read()
            for started in ready:
                started.result()
    finally:
        _stop_fork_server()
        shutil.rmtree(spool, ignore_errors=True)


def _engagement_of(
    sources: Sources, defs: Definitions, when: pd.Timestamp, read_latest: bool
) -> pd.DataFrame | RecentActivity | None:
    """The leads' engagement at `when`: the activity rows when they serve then (one row per lead: read in
    about a second), else, when `read_latest`, every lead's latest engagement row (91.7M rows at 1M
    leads: ~10 s of decoding), else None (the scoring processes read those)."""
    recent = RecentActivity.read(sources.activity, when, defs) if sources.activity is not None else None
    if recent is not None or not read_latest or sources.engagement is None:
        return recent
    return latest_engagement(sources.engagement, defs, when)


def _start_fork_server() -> BaseContext:
    """The fork server the scoring processes come from, started (if it is not yet) with the scoring code
    to import; returns its context. Not fork: LightGBM's OpenMP runtime is not safe to use in a child
    forked after it ran here. A fork server that has imported the scoring code (and run none of it)
    forks each process, so its ~2 s of imports are paid once, not once per process, and started
    early they go on while this process does its own start-up."""
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    forkserver.ensure_running()
    return context


def _read(previous: Future[Previous] | Previous | None) -> Previous:
    if previous is None:
        return {}
    return previous.result() if isinstance(previous, Future) else previous


def _stop_fork_server() -> None:
    """End the fork server with the run, and wait for it: it would otherwise outlive the pool, and the
    scoring processes' CPU time would never count among this process's children (bench/score_scale.py)."""
    from multiprocessing import forkserver

    stop = getattr(getattr(forkserver, "_forkserver", None), "_stop", None)  # CPython's own; absent elsewhere
    if stop is not None:
        stop()


def _previous_of(frame: pd.DataFrame, previous: dict[str, tuple[float, datetime]]) -> dict[str, tuple[float, datetime]]:
    return {i: previous[i] for i in frame["lead_id"].astype(str).tolist() if i in previous}


@dataclass
class Spooled:
    """A chunk scored by a scoring process: its output rows in an Arrow IPC file, and its MQLs. Sent
    through the pool's pipe, the rows (~35 MB a chunk of 20,000, reasons and JSON) took ~80 ms to
    pickle there and as long to receive here; the file is written in ~15 ms and read here in place."""

    path: Path
    n_mql: int

    def read(self) -> ScoredChunk:
        """The chunk, its table memory-mapped from the file, which is gone from the folder once read."""
        table = pa.ipc.open_file(pa.memory_map(str(self.path))).read_all()
        self.path.unlink()  # the mapping keeps the rows until the table is dropped
        return ScoredChunk(table, [], self.n_mql)


# A scoring process's own scorer, champion and record store, set once at its start.
_worker: tuple[Scorer, Champion, RecordStore] | None = None


def _start_worker(run: int, settings: Settings, defs: Definitions, champion: Champion, spool: Path) -> None:
    global _worker
    # Watch first: opening the record store may wait on a lock the killed parent held.
    threading.Thread(target=_exit_with_run, args=(run, spool), name="samepage-run-watch", daemon=True).start()
    # One LightGBM thread each: as many processes as cores already, and OpenMP pools on top of that
    # spin on the cores the other processes need.
    _worker = (Scorer(settings, defs, threads=1), champion, RecordStore.from_settings(settings))
    # With Python's default thresholds (a collection per 700 net allocations) a chunk of 20,000 answers set
    # off ~2,340 collections, each walking the champion and the imports: ~18 % of the chunk's CPU.
    # Frozen and collected as when serving: 28 a chunk.
    refreeze()


def _exit_with_run(run: int, spool: Path) -> None:
    """A scoring process ends when the `score --all` process `run` is gone (killed: nobody else would
    ever end it; its parent is the fork server, which lives as long as its children), and takes
    the run's spooled chunks with it."""
    try:
        watch = os.pidfd_open(run)  # readable once `run` has exited (Linux)
    except ProcessLookupError:
        _exit(spool)
    except (AttributeError, OSError):  # no pidfd here: ask every half second
        while _alive(run):
            time.sleep(0.5)
        _exit(spool)
    select.select([watch], [], [])
    _exit(spool)


def _exit(spool: Path) -> NoReturn:
    shutil.rmtree(spool, ignore_errors=True)
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone (PermissionError: the number is someone else's now)
        return False
    return True


def _ready() -> bool:
    return _worker is not None


def _score_chunk(
    frame: pd.DataFrame, now: datetime, suggest: bool, previous: dict[str, tuple[float, datetime]], path: Path
) -> Spooled:
    assert _worker is not None, "a scoring process starts with _start_worker"
    scorer, champion, store = _worker
    scored = finish(score_frame(scorer, champion, frame, now, suggest), previous)
    # Saved here, one transaction per chunk as the parent would: the payloads (~2.2 KB a lead) need
    # not cross to the parent, which otherwise spends on them the time it needs to feed the workers.
    store.save_scores(scored.rows, scored.vocabularies)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, scored.table.schema) as writer:
        writer.write_table(scored.table)
    return Spooled(path, scored.n_mql)


def score_frame(scorer: Scorer, champion: Champion, frame: pd.DataFrame, now: datetime, suggest: bool = True) -> list[Scored]:
    """One chunk (attribute and engagement columns, as `features.offline.lead_chunks` gives) through `Scorer.scored`."""
    chunk_features = ChunkFeatures(frame, scorer.defs)
    reading = dataclasses.replace(champion, online=chunk_features)
    return scorer.scored([(lead_id, {}) for lead_id in chunk_features.ids], reading, suggest=suggest, now=now)


def _sink(chunks: Iterator[ScoredChunk], output: Path, store: RecordStore, total: int, progress: bool) -> tuple[int, int]:
    """Output rows and latest scores for each chunk; the output appears only once complete."""
    tmp = _temporary(output)
    n = n_mql = 0
    writer: pq.ParquetWriter | None = None
    columns = [TextColumn("scoring every lead"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    try:
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task("score", total=total)
            for scored in chunks:
                if output.suffix.lower() == ".csv":
                    scored.table.to_pandas().to_csv(tmp, index=False, header=n == 0, mode="w" if n == 0 else "a")
                else:
                    writer = writer or pq.ParquetWriter(tmp, OUTPUT_SCHEMA, **PARQUET_OPTIONS)
                    writer.write_table(scored.table)
                store.save_scores(scored.rows, scored.vocabularies)  # nothing left to save when a scoring process did
                n += scored.table.num_rows
                n_mql += scored.n_mql
                bar.advance(task, scored.table.num_rows)
        if writer is not None:
            writer.close()
            writer = None
        if n == 0:
            empty = pa.Table.from_pylist([], OUTPUT_SCHEMA)
            if output.suffix.lower() == ".csv":
                empty.to_pandas().to_csv(tmp, index=False)
            else:
                pq.write_table(empty, tmp, **PARQUET_OPTIONS)
        os.replace(tmp, output)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return n, n_mql


def _temporary(output: Path) -> Path:
    return output.with_name(f".{output.name}.{os.getpid()}.tmp")

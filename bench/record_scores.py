"""The record store's score I/O as `score --all` drives it: `score_row`, `save_scores` by chunks, `previous_scores_all`.

    .venv/bin/python bench/record_scores.py --source /tmp/copy-of-ws/records.db [--url postgresql+psycopg2://...]

Takes every latest score of `--source` (a copy of a workspace's records.db: opening it migrates it and
writes its WAL files) as the answers they were saved from (payloads kept whole by older versions are
compacted in the order of the first one's features: the stored form's size does not depend on it),
makes their record-store rows with `score_row`,
saves them in chunks of `--chunk` into a fresh store (a new SQLite file per run, or `--url` emptied
first), then reads them back with `previous_scores_all`: best of `--runs` (wall and this process's CPU time,
less disturbed by other work on the machine), with the load average.
A measurement, not a test: figures depend on the load and the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="a records.db holding latest scores (a copy)")
    parser.add_argument("--url", help="a record store to write into instead of a fresh SQLite file (emptied first)")
    parser.add_argument("--chunk", type=int, default=20_000, help="rows per save_scores call")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import sqlalchemy as sa

    from samepage.answers import compact, vocabulary
    from samepage.records import RecordStore, scores_table
    from serving.scorer import Scored
    from serving.writer import score_row

    source_store = RecordStore(f"sqlite:///{args.source}")  # migrated: the vocabularies table
    with sqlite3.connect(args.source) as source:
        payloads = [json.loads(p) for (p,) in source.execute("SELECT payload FROM latest_scores ORDER BY lead_id")]
    results: list[Scored] = []
    whole = None
    for p in payloads:
        if "vocabulary" not in p["explanation"]:
            if whole is None:
                items = sorted(p["explanation"]["contributions"], key=lambda c: c["feature"])
                whole = vocabulary(tuple(c["feature"] for c in items), tuple(c["label"] for c in items))
            p = compact(p, whole)
            results.append(Scored.from_record(p, whole))
        else:
            results.append(Scored.from_record(p, source_store.vocabulary(p["explanation"]["vocabulary"])))
    source_store.close()
    vocabularies = list({r.explanation.vocabulary.id: r.explanation.vocabulary for r in results}.values())
    rows: list[dict] = []
    made = []
    for _ in range(args.runs):
        started = time.perf_counter()
        rows = [score_row(r) for r in results]
        made.append(time.perf_counter() - started)
    print(f"{len(rows):,} rows; chunks of {args.chunk:,}; best of {args.runs}; cores {os.cpu_count()}")
    print(f"{'score_row':<19} {min(made):6.2f} s  load {os.getloadavg()[0]:.2f}")
    saves: list[float] = []
    reads: list[float] = []
    save_cpu: list[float] = []
    read_cpu: list[float] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(dir=args.source.parent) as tmp:
            store = RecordStore(args.url or f"sqlite:///{tmp}/records.db")
            with store.engine.begin() as conn:
                conn.execute(scores_table.delete())
            started, cpu = time.perf_counter(), time.process_time()
            for start in range(0, len(rows), args.chunk):
                store.save_scores(rows[start : start + args.chunk], vocabularies)
            saves.append(time.perf_counter() - started)
            save_cpu.append(time.process_time() - cpu)
            started, cpu = time.perf_counter(), time.process_time()
            previous = store.previous_scores_all()
            reads.append(time.perf_counter() - started)
            read_cpu.append(time.process_time() - cpu)
            with store.engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(scores_table)).scalar() == len(rows)
            assert len(previous) == len(rows)
            store.close()
    load = f"load {os.getloadavg()[0]:.2f}"
    for name, wall, cpu_times in (("save_scores", saves, save_cpu), ("previous_scores_all", reads, read_cpu)):
        runs = ", ".join(f"{t:.2f}" for t in wall)
        print(f"{name:<19} {min(wall):6.2f} s, CPU {min(cpu_times):6.2f} s  {load}  (runs: {runs})")


if __name__ == "__main__":
    main()

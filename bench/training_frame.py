"""Benchmark: training's point-in-time read (`features.store.training_frame`) through Feast's DuckDB
offline store (the repo's) and through its file (Dask) store, each in a child process of its own.

    .venv/bin/python bench/training_frame.py --home <a workspace `samepage train` has run on> [--service sql_likelihood_v1]

For each store: the snapshot rows read, wall seconds of the read, and the child's peak RSS (`os.wait4`);
then whether the two frames are equal. It is a measurement, not a test: compare figures from the
same machine. The workspace is read, not changed (its `feature_store.yaml` stays as it is).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
import pandas as pd
from features.feast_repo import file_offline_store
from features.store import training_frame
from samepage.definitions import load_definitions
from samepage.settings import Settings
from training.data import load_labels

kind, service, out = sys.argv[1], sys.argv[2], sys.argv[3]
settings = Settings()
defs = load_definitions(settings.definitions)
snapshots = load_labels(settings, defs, None).labels.snapshots[["lead_id", "as_of"]]
store = file_offline_store(settings) if kind == "file" else None  # None: the repo's (DuckDB)
started = time.perf_counter()
frame = training_frame(settings, defs, snapshots, feature_service=service, store=store)
seconds = time.perf_counter() - started
frame.to_pickle(out)
print(json.dumps({"rows": len(frame), "seconds": round(seconds, 1)}))
"""


def child(kind: str, home: Path, service: str, out: Path) -> dict[str, float]:
    env = {**os.environ, "SAMEPAGE_HOME": str(home), "PYTHONPATH": str(REPO), "MLFLOW_LOGGING_LEVEL": "ERROR"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, kind, service, str(out)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind}: the child failed (exit {os.waitstatus_to_exitcode(status)})")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "peak_gib": round(usage.ru_maxrss / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a workspace `samepage train` has run on")
    parser.add_argument("--service", default="sql_likelihood_v1", help="the feature service to read (applied by train)")
    parser.add_argument("--stores", default="duckdb,file", help="comma-separated: duckdb, file")
    args = parser.parse_args()
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="samepage-bench-") as tmp:
        frames: dict[str, Path] = {}
        for kind in args.stores.split(","):
            frames[kind] = Path(tmp) / f"{kind}.pkl"
            load = os.getloadavg()[0]
            figures = child(kind, args.home, args.service, frames[kind])
            print(
                f"{kind:>6}: {figures['rows']:,} snapshot rows in {figures['seconds']} s, peak RSS "
                f"{figures['peak_gib']} GiB (load {load:.2f} before, {os.getloadavg()[0]:.2f} after)",
                flush=True,
            )
        if len(frames) == 2:
            a, b = (pd.read_pickle(p) for p in frames.values())
            print("frames equal:", a.equals(b))


if __name__ == "__main__":
    main()

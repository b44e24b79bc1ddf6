"""Benchmark: demo → features → train → `samepage score --all`, each step a child process.

    .venv/bin/python bench/score_scale.py --leads 100000 [--home /tmp/samepage-bench] [--keep] [--chunk-size 20000]
    .venv/bin/python bench/score_scale.py --home /tmp/samepage-bench --skip-build [--no-to-pass] [--engine spark]

For every step: wall seconds, CPU seconds and peak RSS of that child alone (`os.wait4`), and the
load average before and after. Then LightGBM's `pred_contrib` alone on the same rows with the same
threads (all cores), the ratio of `score --all` to it, and samepage's own contributions on those rows
(`Bundle.contributions`: tree by tree on decision patterns, one thread). It is a measurement, not a test: compare
figures from the same machine. Uses its own workspace (a temporary folder unless --home is given).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLI = "from samepage.cli import app; app()"

PRED_CONTRIB = """
import json, sys, time
from datetime import UTC, datetime
import pandas as pd
from features.offline import ChunkFeatures, Sources, lead_chunks
from samepage.definitions import load_definitions
from samepage.settings import Settings
from serving.scorer import Scorer
settings = Settings()
defs = load_definitions(settings.definitions)
scorer = Scorer(settings, defs)
scorer.refresh()
bundle = scorer.champion.bundle
now = datetime.now(UTC)
t0 = time.perf_counter()
frames = [ChunkFeatures(f, defs) for f in lead_chunks(Sources.of(settings, defs), defs, pd.Timestamp(now), int(sys.argv[1]))]
X = [bundle.encoder.transform(c.get(c.ids, None, now)) for c in frames]
read_s = time.perf_counter() - t0
runs, ours = [], []
for _ in range(3):  # other jobs on the cores slow OpenMP a lot: the best of three
    t0 = time.perf_counter()
    rows = 0
    for x in X:
        bundle.booster.predict(x, pred_contrib=True)  # LightGBM's own, on all cores
        rows += len(x)
    runs.append(round(time.perf_counter() - t0, 2))
    t0 = time.perf_counter()
    for x in X:
        bundle.contributions(x)  # samepage's: tree by tree on decision patterns (samepage.treepaths), one thread
    ours.append(round(time.perf_counter() - t0, 2))
out = {
    "rows": rows, "read_and_derive_seconds": round(read_s, 2), "pred_contrib_seconds": min(runs), "pred_contrib_runs": runs,
    "samepage_contributions_seconds": min(ours), "samepage_contributions_runs": ours,
}
print(json.dumps(out))
"""


def run(name: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One child process: its wall and CPU seconds, peak RSS (MiB) and the load average around it."""
    load_before = os.getloadavg()
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], env=env, stdout=out_file, stderr=err_file, text=True)
        _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak RSS included)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    if proc.returncode != 0:
        sys.stderr.write(err[-4000:])
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    figures = {
        "step": name,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "load_before": round(load_before[0], 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    return {**figures, "stdout": out, "stderr": err}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000, help="demo leads to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", type=Path, default=None, help="workspace folder (default: a temporary one)")
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    parser.add_argument("--no-to-pass", action="store_true", help="score --all --no-to-pass (no mql.to_pass search)")
    parser.add_argument("--engine", default="local", choices=["local", "spark"])
    parser.add_argument("--score-once", action="store_true", help="run score --all once, not twice")
    parser.add_argument("--skip-build", action="store_true", help="reuse the workspace at --home (demo, features, train done)")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="samepage-score-bench-"))
    env = {**os.environ, "SAMEPAGE_HOME": str(home), "PYTHONPATH": str(REPO), "MLFLOW_LOGGING_LEVEL": "ERROR", "COLUMNS": "250"}
    steps: list[dict[str, Any]] = []
    try:
        if not args.skip_build:
            steps.append(run("demo", ["-c", CLI, "demo", "--leads", str(args.leads), "--seed", str(args.seed)], env))
            steps.append(run("features", ["-c", CLI, "features"], env))
            steps.append(run("train", ["-c", CLI, "train", "--json"], env))
        output = home / "scores.parquet"
        cmd = ["-c", CLI, "score", "--all", "--output", str(output), "--chunk-size", str(args.chunk_size)]
        cmd += ["--engine", args.engine] + (["--no-to-pass"] if args.no_to_pass else [])
        steps.append(run("score --all", cmd, env))
        scored = steps[-1]
        if not args.score_once:
            steps.append(run("score --all (again: every lead has a previous score)", cmd, env))
        steps.append(run("pred_contrib alone", ["-c", PRED_CONTRIB, str(args.chunk_size)], env))
        contrib = json.loads(steps[-1]["stdout"].strip().splitlines()[-1])
        import pyarrow.parquet as pq

        n_out = pq.ParquetFile(output).metadata.num_rows
    finally:
        if not args.keep and args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    print(f"{'step':<56}{'wall s':>8}{'cpu s':>8}{'peak MiB':>10}{'load before':>13}{'load after':>12}")
    for s in steps:
        print(
            f"{s['step']:<56}{s['wall_seconds']:>8}{s['cpu_seconds']:>8}{s['peak_rss_mib']:>10}"
            f"{s['load_before']:>13}{s['load_after']:>12}"
        )
    lines = scored["stderr"].splitlines() + scored["stdout"].splitlines()
    said = [line for line in lines if "scored" in line or "leads (" in line]
    print(f"score --all said: {' '.join(said).strip()}")
    print(f"rows written: {n_out:,}; pred_contrib: {contrib}")
    alone = max(contrib["pred_contrib_seconds"], 1e-9)
    found = re.search(r"in ([0-9.]+)s", " ".join(said))
    inside = float(found.group(1)) if found else float("nan")
    print(f"ratio score --all / pred_contrib alone (same rows, all cores): whole command {scored['wall_seconds'] / alone:.1f}x,")
    print(f"  its own timing after start-up ({inside:.1f} s) {inside / alone:.1f}x")
    mine = contrib["samepage_contributions_seconds"]
    print(f"samepage's contributions (tree by tree, 1 thread) on the same rows: {mine:.2f} s, {mine / alone:.2f}x pred_contrib")
    print(f"engine {args.engine}, to_pass search {'off' if args.no_to_pass else 'on'}, chunk {args.chunk_size:,}")
    print(f"cores: {os.cpu_count()}; workspace: {home if args.keep or args.home else '(removed)'}")


if __name__ == "__main__":
    main()

"""Benchmark: demo leads → features (Feast apply + materialize) → `train`, wall time per step.

    .venv/bin/python bench/train_scale.py --leads 100000 [--home /tmp/samepage-bench] [--keep]

Prints one JSON object with the seconds of every step and the training metrics. It is a
measurement, not a test: compare figures from the same machine. Uses its own workspace
(a temporary folder unless --home is given), never the user's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from features.store import build_features
from samepage.definitions import load_definitions
from samepage.demo import write_demo
from samepage.settings import Settings
from training.pipeline import train

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000, help="demo leads to generate")
    parser.add_argument("--seed", type=int, default=0, help="demo seed")
    parser.add_argument("--home", type=Path, default=None, help="workspace folder (default: a temporary one)")
    parser.add_argument("--definitions", type=Path, default=REPO / "configs" / "definitions.yaml")
    parser.add_argument("--keep", action="store_true", help="keep the workspace afterwards")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="samepage-bench-"))
    settings = Settings(home=home, definitions=args.definitions, _env_file=None)
    defs = load_definitions(settings.definitions)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    try:
        t = time.perf_counter()
        demo = write_demo(settings, defs, n_leads=args.leads, seed=args.seed)
        seconds["demo"] = time.perf_counter() - t
        t = time.perf_counter()
        built = build_features(settings, defs, progress=False)
        seconds["features"] = time.perf_counter() - t
        seconds.update({f"features: {k}": v for k, v in built.seconds.items()})
        t = time.perf_counter()
        result = train(settings, defs, progress=False)
        seconds["train"] = time.perf_counter() - t
        seconds.update({f"train: {k}": v for k, v in result.seconds.items() if k != "total"})
        seconds["end_to_end"] = time.perf_counter() - started
        report = {
            "leads": args.leads,
            "events": demo.events,
            "cpu_count": os.cpu_count(),
            "load_average_1m": os.getloadavg()[0],
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "split": result.split,
            "result": result.as_json(),
        }
        print(json.dumps(report, indent=2, default=str))
    finally:
        if not args.keep and args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

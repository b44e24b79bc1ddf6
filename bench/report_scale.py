"""How the funnel report scales: wall time of `build_report` over N demo leads, all of them scored.

Usage: python bench/report_scale.py [N ...]   (defaults: 20,000 and 200,000)
Scores are random numbers in [0, 1): the report's cost does not depend on what they are.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from samepage.definitions import load_definitions  # noqa: E402
from samepage.demo import generate_demo  # noqa: E402
from serving.report import build_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="*", type=int, default=[20_000, 200_000], help="numbers of leads")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per size (the median is shown)")
    parser.add_argument("--definitions", type=Path, default=REPO / "configs" / "definitions.yaml")
    args = parser.parse_args(argv)

    console = Console()
    defs = load_definitions(args.definitions)
    table = Table(title="build_report wall time (whole period, every lead scored)")
    for col in ("leads", "stage rows", "median s", "min s"):
        table.add_column(col, justify="right")
    for n in args.n:
        with console.status(f"generating {n:,} demo leads"):
            tables = generate_demo(defs, n_leads=n, seed=0)
        rng = np.random.default_rng(0)
        scores = pd.DataFrame({"lead_id": tables.leads["lead_id"].astype(str), "score": rng.random(n)})
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            build_report(defs, tables, tables.stages, scores, now=NOW)
            times.append(time.perf_counter() - start)
        table.add_row(f"{n:,}", f"{len(tables.stages):,}", f"{statistics.median(times):.3f}", f"{min(times):.3f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

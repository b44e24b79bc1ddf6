"""How the demo generator scales: wall time, rows per table and peak memory for N leads.

Usage: python bench/demo_scale.py [N] [--seed S] [--write]   (N defaults to 1,000,000)
With --write the tables also go through `write_tables` into a temporary workspace (timed apart).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from samepage.definitions import load_definitions  # noqa: E402
from samepage.demo import generate_demo  # noqa: E402
from samepage.tables import write_tables  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process: steadier than wall time on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000, help="number of leads to generate")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--write", action="store_true", help="also write Parquet through write_tables")
    parser.add_argument("--definitions", type=Path, default=REPO / "configs" / "definitions.yaml")
    args = parser.parse_args(argv)

    console = Console()
    defs = load_definitions(args.definitions)
    baseline = peak_rss_mib()
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"generating {args.n:,} leads", total=args.n)
        start, cpu_start = time.perf_counter(), cpu_seconds()
        tables = generate_demo(
            defs, n_leads=args.n, seed=args.seed, on_progress=lambda done, _: progress.update(task, completed=done)
        )
        gen_seconds, gen_cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    gen_peak = peak_rss_mib()

    report = Table(title=f"demo data: {args.n:,} leads, seed {args.seed}")
    report.add_column("measure")
    report.add_column("value", justify="right")
    report.add_row("generate wall time (s)", f"{gen_seconds:.1f}")
    report.add_row("generate CPU time (s)", f"{gen_cpu:.1f}")
    report.add_row("load average (1 min) at the end", f"{os.getloadavg()[0]:.1f}")
    for name in ("leads", "events", "stages"):
        frame = getattr(tables, name)
        report.add_row(f"{name} rows", f"{len(frame):,}")
        report.add_row(f"{name} in memory, pandas deep estimate (MiB)", f"{frame.memory_usage(deep=True).sum() / 2**20:,.0f}")
    report.add_row("peak RSS before generating (MiB)", f"{baseline:,.0f}")
    report.add_row("peak RSS after generating (MiB)", f"{gen_peak:,.0f}")

    if args.write:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_tables(Path(tmp) / "data", tables)
            write_seconds = time.perf_counter() - start
            size = sum(f.stat().st_size for f in (Path(tmp) / "data").iterdir())
        report.add_row("write_tables wall time (s)", f"{write_seconds:.1f}")
        report.add_row("Parquet on disk (MiB)", f"{size / 2**20:,.0f}")
        report.add_row("peak RSS after writing (MiB)", f"{peak_rss_mib():,.0f}")
    console.print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How long the feature transform takes, and how much memory, for N leads with a year of events.

    .venv/bin/python bench/features_scale.py --leads 1000000

Generates demo data (`features.demo.generate_demo`) into a temporary workspace, then runs the
transform (and the Parquet writes `samepage features` does) in a fresh child process, so the
reported peak RSS is the transform's own and not the generator's.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

app = typer.Typer(add_completion=False)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(data_dir: Path, definitions: Path) -> dict[str, float | int]:
    """Read the canonical tables, then transform and write the two sources (`write_sources`)."""
    from features.definitions import load_definitions
    from features.tables import read_tables
    from features.transform import write_sources

    defs = load_definitions(definitions)
    start = time.perf_counter()
    tables = read_tables(data_dir)
    read_s = time.perf_counter() - start
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    written = write_sources(tables, defs, data_dir.parent / "sources")
    build_s = time.perf_counter() - start
    return {
        "leads": len(tables.leads),
        "events": len(tables.events),
        "engagement_rows": written.n_engagement_rows,
        "read_seconds": round(read_s, 1),
        "transform_and_write_seconds": round(build_s, 1),
        "transform_and_write_cpu_seconds": round(_cpu_seconds() - cpu_start, 1),
        "peak_rss_mib": round(_peak_rss_mib()),
    }


@app.command()
def main(
    leads: int = typer.Option(1_000_000, help="Number of demo leads to generate"),
    seed: int = typer.Option(0, help="Demo data seed"),
    definitions: Path = typer.Option(REPO / "configs" / "definitions.yaml", help="Definitions file"),
    child: Path | None = typer.Option(None, hidden=True, help="Internal: measure this data folder"),
) -> None:
    """Generate demo data for LEADS leads, then measure the transform in a child process."""
    if child is not None:
        print(json.dumps(measure(child, definitions)))
        return
    from features.definitions import load_definitions
    from features.demo import generate_demo
    from features.tables import write_tables

    defs = load_definitions(definitions)
    with tempfile.TemporaryDirectory(prefix="samepage-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        start = time.perf_counter()
        write_tables(data_dir, generate_demo(defs, n_leads=leads, seed=seed))
        print(f"generated {leads:,} demo leads in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(data_dir), "--definitions", str(definitions)],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
    for key, value in result.items():
        print(f"{key:>18}: {value:,}")


if __name__ == "__main__":
    app()

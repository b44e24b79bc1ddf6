"""How long the feature transform takes, and how much memory, for N leads with a year of events.

    .venv/bin/python bench/features_scale.py --leads 1000000          # transform + Parquet sources
    .venv/bin/python bench/features_scale.py --leads 20000 --store    # + apply, materialize, reads

Generates demo data (`samepage.demo.generate_demo`) into a temporary workspace, then runs the
transform (the events streamed by chunks of leads and the Parquet writes `samepage features`
does, `features.streamed.write_workspace_sources`) in a fresh child process, so the reported
peak RSS is the transform's own and not the generator's.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

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
    """Read the leads, then stream the events into the three sources as `samepage features` does."""
    import pandas as pd

    from features.streamed import write_workspace_sources
    from samepage.data.live import workspace_parts
    from samepage.definitions import load_definitions
    from samepage.inbox import Inbox
    from samepage.records import RecordStore
    from samepage.settings import Settings

    defs = load_definitions(definitions)
    settings = Settings(home=data_dir.parent, definitions=definitions)
    records = RecordStore.from_settings(settings)
    start = time.perf_counter()
    leads, batches = workspace_parts(data_dir, Inbox.of(records))
    read_s = time.perf_counter() - start
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    written, n_events = write_workspace_sources(settings, defs, leads, batches, pd.Timestamp.now(tz="UTC"))
    build_s = time.perf_counter() - start
    records.close()
    return {
        "leads": len(leads),
        "events": n_events,
        "engagement_rows": written.n_engagement_rows,
        "read_leads_seconds": round(read_s, 1),
        "transform_and_write_seconds": round(build_s, 1),
        "transform_and_write_cpu_seconds": round(_cpu_seconds() - cpu_start, 1),
        "peak_rss_mib": round(_peak_rss_mib()),
    }


def measure_store(data_dir: Path, definitions: Path, lookups: int = 2000) -> dict[str, float | int]:
    """The whole `samepage features` build, then one-row online lookups and a training frame."""
    import numpy as np
    import pandas as pd

    from features.store import OnlineFeatures, build_features, training_frame
    from samepage.definitions import load_definitions
    from samepage.settings import Settings

    defs = load_definitions(definitions)
    settings = Settings(home=data_dir.parent, definitions=definitions)  # SAMEPAGE_ONLINE_STORE etc. apply
    start = time.perf_counter()
    summary = build_features(settings, defs, progress=False)
    build_s = time.perf_counter() - start
    leads = pd.read_parquet(data_dir / "leads.parquet", columns=["lead_id", "created_at"])
    online = OnlineFeatures(settings, defs)
    ids = leads["lead_id"].sample(lookups, replace=True, random_state=0).tolist()
    for lead_id in ids[:100]:  # warm-up
        online.get([lead_id])
    took = []
    for lead_id in ids:
        t0 = time.perf_counter()
        online.get([lead_id])
        took.append(time.perf_counter() - t0)
    ms = np.array(took) * 1000
    entity = pd.DataFrame({"lead_id": leads["lead_id"], "as_of": leads["created_at"] + pd.Timedelta(days=14)})
    start = time.perf_counter()
    training_frame(settings, defs, entity)
    frame_s = time.perf_counter() - start
    return {
        "leads": summary.n_leads,
        "events": summary.n_events,
        "engagement_rows": summary.n_engagement_rows,
        "build_features_seconds": round(build_s, 1),
        **{f"  {step}": seconds for step, seconds in summary.seconds.items()},
        "online_get_1_row_median_ms": round(float(np.median(ms)), 2),
        "online_get_1_row_p99_ms": round(float(np.percentile(ms, 99)), 2),
        "training_frame_all_leads_seconds": round(frame_s, 1),
        "peak_rss_mib": round(_peak_rss_mib()),
    }


@app.command()
def main(
    leads: Annotated[int, typer.Option(help="Number of demo leads to generate")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Demo data seed")] = 0,
    definitions: Annotated[Path, typer.Option(help="Definitions file")] = REPO / "configs" / "definitions.yaml",
    store: Annotated[bool, typer.Option("--store", help="Also apply, materialize and time online/offline reads")] = False,
    child: Annotated[Path | None, typer.Option(hidden=True, help="Internal: measure this data folder")] = None,
) -> None:
    """Generate demo data for LEADS leads, then measure the transform in a child process."""
    if child is not None:
        print(json.dumps(measure_store(child, definitions) if store else measure(child, definitions)))
        return
    from samepage.definitions import load_definitions
    from samepage.demo import generate_demo
    from samepage.tables import write_tables

    defs = load_definitions(definitions)
    with tempfile.TemporaryDirectory(prefix="samepage-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        start = time.perf_counter()
        write_tables(data_dir, generate_demo(defs, n_leads=leads, seed=seed))
        print(f"generated {leads:,} demo leads in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(data_dir), "--definitions", str(definitions)]
            + (["--store"] if store else []),
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", file=sys.stderr)
    for key, value in result.items():
        print(f"{key:>36}: {value:,}")


if __name__ == "__main__":
    app()

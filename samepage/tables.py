"""The three canonical tables (leads, events, stages) and how they are kept in the workspace.

Every writer goes through `write_tables`, which replaces the files atomically: readers see the
old set or the new set, never a mix, and a failed write leaves the workspace as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

LEAD_KEYS = ["lead_id", "created_at"]
EVENT_COLUMNS = ["lead_id", "occurred_at", "type", "value"]
STAGE_COLUMNS = ["lead_id", "stage", "occurred_at", "reason"]
# Well-known lead attributes (any other column is an attribute too).
WELL_KNOWN_ATTRIBUTES = [
    "source",
    "industry",
    "employees",
    "annual_revenue",
    "country",
    "job_title",
    "seniority",
    "department",
]
TABLES = ("leads", "events", "stages")


@dataclass
class CanonicalTables:
    """leads: lead_id (str, unique), created_at (UTC), attributes...;
    events: lead_id, occurred_at (UTC), type (str), value (float, may be NaN);
    stages: lead_id, stage (a definitions key), occurred_at (UTC), reason (str or None)."""

    leads: pd.DataFrame
    events: pd.DataFrame
    stages: pd.DataFrame

    @property
    def attribute_columns(self) -> list[str]:
        return [c for c in self.leads.columns if c not in LEAD_KEYS]


def empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": pd.Series(dtype="string"),
            "occurred_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "type": pd.Series(dtype="string"),
            "value": pd.Series(dtype="float64"),
        }
    )


def empty_stages() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": pd.Series(dtype="string"),
            "stage": pd.Series(dtype="string"),
            "occurred_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "reason": pd.Series(dtype="string"),
        }
    )


def table_path(data_dir: Path, name: str) -> Path:
    return data_dir / f"{name}.parquet"


def has_data(data_dir: Path) -> bool:
    return table_path(data_dir, "leads").exists()


def read_tables(data_dir: Path) -> CanonicalTables:
    """Read the workspace's canonical tables; events and stages may be absent (empty)."""
    leads_file = table_path(data_dir, "leads")
    if not leads_file.exists():
        raise FileNotFoundError(
            f"no leads in {data_dir}: run `samepage demo` or `samepage import --leads FILE` first"
        )
    leads = pd.read_parquet(leads_file)
    events_file, stages_file = table_path(data_dir, "events"), table_path(data_dir, "stages")
    events = pd.read_parquet(events_file) if events_file.exists() else empty_events()
    stages = pd.read_parquet(stages_file) if stages_file.exists() else empty_stages()
    return CanonicalTables(leads=leads, events=events, stages=stages)


def write_tables(data_dir: Path, tables: CanonicalTables) -> None:
    """Write all three tables to a staging folder, then swap it in with renames."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".data-", dir=data_dir.parent))
    try:
        for name in TABLES:
            getattr(tables, name).to_parquet(table_path(staging, name), index=False)
        old = data_dir.with_name(data_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if data_dir.exists():
            os.replace(data_dir, old)
        os.replace(staging, data_dir)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        old = data_dir.with_name(data_dir.name + ".old")
        if old.exists() and not data_dir.exists():
            os.replace(old, data_dir)
        raise

"""The three canonical tables (leads, events, stages) and how they are kept in the workspace.

Every writer goes through `write_tables`, which replaces the files atomically: readers see the
old set or the new set, never a mix, and a failed write leaves the workspace as it was. The new
set is on disk (fsync'd) before the old one is moved aside, and a crash between the two renames
is repaired on the next read or write (`recover`), so no crash loses the last complete set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
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
STAGING_PREFIX = ".data-"
STALE_STAGING_SECONDS = 3600.0  # a staging folder this old belongs to a writer that died


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
    recover(data_dir)
    return table_path(data_dir, "leads").exists()


def recover(data_dir: Path, stale_after: float = STALE_STAGING_SECONDS) -> None:
    """Repair what a crashed `write_tables` left: put the previous set back when the crash came
    between moving it aside and moving the new one in; remove staging folders of dead writers."""
    old = _old(data_dir)
    if old.exists() and not data_dir.exists():
        os.replace(old, data_dir)
        _fsync_dir(data_dir.parent)
    if not data_dir.parent.exists():
        return
    now = time.time()
    for staging in data_dir.parent.glob(STAGING_PREFIX + "*"):
        try:
            if staging.is_dir() and now - staging.stat().st_mtime > stale_after:
                shutil.rmtree(staging, ignore_errors=True)
        except FileNotFoundError:  # another process removed it first
            continue


def read_tables(data_dir: Path, events: bool = True) -> CanonicalTables:
    """Read the workspace's canonical tables; events and stages may be absent (empty).

    `events=False` reads the leads alone (events and stages come back empty): for a caller that
    streams the events file itself.
    """
    recover(data_dir)
    leads_file = table_path(data_dir, "leads")
    if not leads_file.exists():
        raise FileNotFoundError(
            f"no leads in {data_dir}: run `samepage demo` or `samepage import --leads FILE` first"
        )
    leads = pd.read_parquet(leads_file)
    if not events:
        return CanonicalTables(leads=leads, events=empty_events(), stages=empty_stages())
    events_file, stages_file = table_path(data_dir, "events"), table_path(data_dir, "stages")
    events = pd.read_parquet(events_file) if events_file.exists() else empty_events()
    stages = pd.read_parquet(stages_file) if stages_file.exists() else empty_stages()
    return CanonicalTables(leads=leads, events=events, stages=stages)


def write_tables(data_dir: Path, tables: CanonicalTables) -> None:
    """Write all three tables to a staging folder (fsync'd), then swap it in with two renames.

    The previous set is only deleted once the new one is in place; a crash at any point leaves
    either the previous or the new complete set (see `recover`).
    """
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    recover(data_dir)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=data_dir.parent))
    old = _old(data_dir)
    try:
        for name in TABLES:
            path = table_path(staging, name)
            getattr(tables, name).to_parquet(path, index=False)
            _fsync_file(path)
        _fsync_dir(staging)
        if old.exists():  # data_dir exists here (recover ran), so this is a finished swap's leftover
            shutil.rmtree(old)
        if data_dir.exists():
            os.replace(data_dir, old)
        os.replace(staging, data_dir)
        _fsync_dir(data_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        recover(data_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _old(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".old")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    """Make renames and new entries in a folder durable (POSIX: fsync the folder itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

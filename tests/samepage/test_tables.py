"""The canonical tables survive a crash at any point of `write_tables`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from samepage import tables as tables_module
from samepage.tables import CanonicalTables, empty_events, empty_stages, has_data, read_tables, write_tables
from tests.utils.builders import make_lead


def _tables(n: int) -> CanonicalTables:
    leads = pd.DataFrame([make_lead(lead_id=f"L-{i}") for i in range(n)])
    return CanonicalTables(leads=leads, events=empty_events(), stages=empty_stages())


def test_a_crash_between_the_two_renames_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "workspace" / "data"
    write_tables(data, _tables(2000))
    os.replace(data, data.with_name("data.old"))  # the state a kill -9 between the renames leaves

    assert has_data(data)  # `samepage up` would otherwise write demo data over it
    assert len(read_tables(data).leads) == 2000
    assert not data.with_name("data.old").exists()


def test_the_next_write_after_a_crash_merges_onto_the_previous_set(tmp_path: Path) -> None:
    data = tmp_path / "workspace" / "data"
    write_tables(data, _tables(2000))
    os.replace(data, data.with_name("data.old"))

    existing = read_tables(data).leads  # what an import reads before it merges
    write_tables(
        data, CanonicalTables(pd.concat([existing, _tables(1).leads.assign(lead_id="new")]), empty_events(), empty_stages())
    )
    assert len(read_tables(data).leads) == 2001


def test_a_failure_while_swapping_keeps_the_previous_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "workspace" / "data"
    write_tables(data, _tables(3))
    real_replace = os.replace
    calls: list[tuple[str, str]] = []

    def replace_then_die(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append((str(src), str(dst)))
        if len(calls) == 2:  # the new set moving in
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(tables_module.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        write_tables(data, _tables(1))
    monkeypatch.setattr(tables_module.os, "replace", real_replace)
    assert len(read_tables(data).leads) == 3
    assert not list(data.parent.glob(".data-*"))


def test_stale_staging_folders_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    data = tmp_path / "workspace" / "data"
    write_tables(data, _tables(1))
    stale, fresh = data.parent / ".data-dead", data.parent / ".data-busy"
    stale.mkdir()
    fresh.mkdir()
    hour_ago = time.time() - 2 * tables_module.STALE_STAGING_SECONDS
    os.utime(stale, (hour_ago, hour_ago))

    write_tables(data, _tables(2))
    assert not stale.exists()
    assert fresh.exists()  # may belong to a writer that is still running

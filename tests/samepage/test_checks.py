"""Data checks: the canonical tables every path writes keep the named expectations."""

from __future__ import annotations

import pandas as pd
import pytest

from samepage.checks import EXPECTATIONS, check_tables
from samepage.data.importer import import_files
from samepage.definitions import Definitions
from samepage.demo import generate_demo
from samepage.settings import Settings
from samepage.tables import CanonicalTables, read_tables
from tests.conftest import REPO, XEDUCATION_CSV, make_event, make_lead, make_stage


def broken(name: str, results: list) -> int:
    return next(r.failing_rows for r in results if r.name == name)


@pytest.fixture(scope="module")
def demo(definitions: Definitions) -> CanonicalTables:
    return generate_demo(definitions, n_leads=600, seed=5)


def test_demo_data_keeps_every_expectation(definitions: Definitions, demo: CanonicalTables) -> None:
    results = check_tables(definitions, demo)
    assert [r.name for r in results] == [e.name for e in EXPECTATIONS]
    assert [r.name for r in results if not r.ok] == []


@pytest.mark.skipif(not XEDUCATION_CSV.exists(), reason=f"real data not found at {XEDUCATION_CSV}")
def test_imported_xeducation_keeps_every_expectation(settings: Settings) -> None:
    from samepage.definitions import load_definitions

    defs = load_definitions(REPO / "configs" / "definitions-xeducation.yaml")
    import_files(settings, defs, leads=XEDUCATION_CSV, mapping=REPO / "configs" / "mappings" / "xeducation.yaml")
    assert [r.name for r in check_tables(defs, read_tables(settings.data_dir)) if not r.ok] == []


def test_each_broken_promise_is_named_with_its_rows(definitions: Definitions, demo: CanonicalTables) -> None:
    leads = pd.concat([demo.leads, demo.leads.head(2)], ignore_index=True)  # two duplicated ids
    events = pd.concat([demo.events, pd.DataFrame([make_event(lead_id="ghost", type="fax")])], ignore_index=True)
    stages = pd.concat(
        [demo.stages, pd.DataFrame([make_stage(lead_id=demo.leads["lead_id"].iloc[0], stage="disqualified", reason=None),
                                    make_stage(lead_id="ghost", stage="won")])],
        ignore_index=True,
    )
    results = check_tables(definitions, CanonicalTables(leads, events, stages))
    assert broken("lead_id_unique", results) == 4
    assert broken("events_of_known_leads", results) == 1 and broken("event_types_defined", results) == 1
    assert broken("stages_of_known_leads", results) == 1 and broken("stage_keys_defined", results) == 1
    assert broken("reasons_where_required", results) == 1
    assert broken("created_at_utc", results) == 0


def test_naive_timestamps_and_missing_columns_fail(definitions: Definitions) -> None:
    leads = pd.DataFrame([make_lead()])
    leads["created_at"] = leads["created_at"].dt.tz_localize(None)
    events = pd.DataFrame([make_event()]).drop(columns=["type"])
    stages = pd.DataFrame([make_stage()])
    results = check_tables(definitions, CanonicalTables(leads, events, stages))
    assert broken("created_at_utc", results) == 1
    assert broken("events_shape", results) == 1
    assert broken("event_types_defined", results) == -1  # could not be checked: no type column
    assert broken("stages_shape", results) == 0

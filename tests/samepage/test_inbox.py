"""The API inbox: idempotent events, lead updates in order, pushed flags, and the offline fold."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from samepage.data.live import INBOX_ID, fold_lead_updates, workspace_tables
from samepage.definitions import Definitions
from samepage.inbox import Inbox, LeadUpdate
from samepage.records import RecordStore
from samepage.tables import CanonicalTables, empty_stages, write_tables
from tests.utils.builders import make_event, make_inbox_event, make_lead


@pytest.fixture
def inbox(tmp_path: Path) -> Inbox:
    return Inbox.of(RecordStore(f"sqlite:///{tmp_path / 'records.db'}"))


def test_events_are_idempotent_on_event_id_within_and_across_calls(inbox: Inbox) -> None:
    first = inbox.add_events([make_inbox_event(event_id="a"), make_inbox_event(event_id="b"), make_inbox_event(event_id="a")])
    assert [lead for _id, lead in first] == ["L-1", "L-1"]  # the repeat inside the call is a duplicate
    again = inbox.add_events([make_inbox_event(event_id="b", lead_id="L-2"), make_inbox_event(event_id="c", lead_id="L-2")])
    assert [lead for _id, lead in again] == ["L-2"]
    stored = inbox.events()
    assert list(stored["event_id"]) == ["a", "b", "c"] and list(stored["lead_id"]) == ["L-1", "L-1", "L-2"]
    assert inbox.watermarks()[1] == int(stored["id"].max())


def test_pushed_flags_say_what_the_online_store_lacks(inbox: Inbox) -> None:
    ids = [i for i, _lead in inbox.add_events([make_inbox_event(event_id=f"e{i}", lead_id=f"L-{i}") for i in range(3)])]
    inbox.add_lead(LeadUpdate("L-9", {"industry": "Retail"}))
    leads, events = inbox.unpushed()
    assert leads == ["L-9"] and sorted(events) == ["L-0", "L-1", "L-2"]
    inbox.mark_pushed(event_ids=ids[:2])
    assert inbox.unpushed()[1] == ["L-2"]


def test_folding_sets_named_attributes_keeps_the_rest_and_adds_new_leads(inbox: Inbox) -> None:
    leads = pd.DataFrame([make_lead(lead_id="L-1"), make_lead(lead_id="L-2", employees=30)])
    inbox.add_lead(LeadUpdate("L-1", {"industry": "Retail", "employees": None}))
    inbox.add_lead(LeadUpdate("L-1", {"industry": "Healthcare"}))
    created = pd.Timestamp("2026-02-01T08:00:00Z").to_pydatetime()
    inbox.add_lead(LeadUpdate("L-3", {"industry": "Software", "fax": "yes"}, created_at=created))
    inbox.add_lead(LeadUpdate("L-4", {"employees": 12}))
    folded = fold_lead_updates(leads, inbox.lead_updates()).set_index("lead_id")
    assert folded.loc["L-1", "industry"] == "Healthcare" and pd.isna(folded.loc["L-1", "employees"])
    assert folded.loc["L-1", "country"] == "United States"  # not named: kept
    assert folded.loc["L-2", "employees"] == 30 and pd.isna(folded.loc["L-2", "fax"])
    assert folded.loc["L-3", "created_at"] == pd.Timestamp(created) and folded.loc["L-3", "fax"] == "yes"
    received = inbox.lead_updates().set_index("lead_id").loc["L-4", "received_at"]
    assert folded.loc["L-4", "created_at"] == received.floor("s")  # created when the API first heard of it
    assert folded["employees"].dtype == "float64"


def test_workspace_tables_append_api_events_up_to_the_snapshot(inbox: Inbox, tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_tables(data, CanonicalTables(pd.DataFrame([make_lead()]), pd.DataFrame([make_event()]), empty_stages()))
    inbox.add_events([make_inbox_event(event_id="x", type="demo_request")])
    snapshot = inbox.watermarks()
    inbox.add_events([make_inbox_event(event_id="y", type="trial_request")])
    tables = workspace_tables(data, inbox, snapshot)
    assert list(tables.events["type"]) == ["page_view", "demo_request"]
    assert pd.isna(tables.events[INBOX_ID].iloc[0]) and tables.events[INBOX_ID].iloc[1] == 1
    assert len(workspace_tables(data, inbox).events) == 3


def test_an_import_and_api_writes_at_the_same_time_lose_nothing(tmp_path: Path, definitions: Definitions) -> None:
    import threading

    from samepage.data.importer import import_files
    from samepage.settings import Settings

    settings = Settings(home=tmp_path / "ws", _env_file=None)
    write_tables(settings.data_dir, CanonicalTables(pd.DataFrame([make_lead()]), pd.DataFrame([make_event()]), empty_stages()))
    leads_file, events_file = tmp_path / "leads.csv", tmp_path / "events.csv"
    pd.DataFrame([make_lead(lead_id=f"I-{i}") for i in range(200)]).to_csv(leads_file, index=False)
    stamps = [pd.Timestamp("2026-01-07T00:00:00Z") + pd.Timedelta(minutes=i) for i in range(200)]
    pd.DataFrame([make_event(lead_id=f"I-{i}", occurred_at=stamps[i]) for i in range(200)]).to_csv(events_file, index=False)
    inbox = Inbox.of(RecordStore.from_settings(settings))

    def api() -> None:
        for i in range(100):
            inbox.add_events([make_inbox_event(event_id=f"api-{i}", lead_id=f"A-{i % 7}")])
            inbox.add_lead(LeadUpdate(f"A-{i % 7}", {"industry": "Retail"}))

    writer = threading.Thread(target=api)
    writer.start()
    import_files(settings, definitions, leads_file, events=events_file)
    writer.join()
    tables = workspace_tables(settings.data_dir, inbox)
    assert set(tables.leads["lead_id"]) == {"L-1"} | {f"I-{i}" for i in range(200)} | {f"A-{i}" for i in range(7)}
    assert len(tables.events) == 1 + 200 + 100 and tables.events[INBOX_ID].notna().sum() == 100

"""What `train` says when the workspace is not ready, and how overrides are checked."""

from __future__ import annotations

import pandas as pd
import pytest

from samepage.definitions import Definitions
from samepage.records import Feedback, RecordStore
from samepage.settings import Settings
from samepage.tables import CanonicalTables, empty_events, write_tables
from tests.conftest import make_lead, make_stage
from training.pipeline import TrainingError, load_labels, prepare, train


def test_unknown_option_is_named(settings: Settings, definitions: Definitions) -> None:
    with pytest.raises(TypeError, match="num_leafs"):
        train(settings, definitions, progress=False, num_leafs=3)


def test_no_data_says_what_to_run(settings: Settings, definitions: Definitions) -> None:
    with pytest.raises(FileNotFoundError, match="samepage demo"):
        prepare(settings, definitions)


def test_training_builds_the_features_it_lacks(settings: Settings, definitions: Definitions) -> None:
    """An import without `samepage features` after it: training brings the feature store up to date first."""
    from features.freshness import staleness
    from samepage.inbox import Inbox

    start = pd.Timestamp("2025-01-01T00:00:00Z")
    leads = pd.DataFrame([make_lead(lead_id=f"L-{i}", created_at=start + pd.Timedelta(days=i)) for i in range(40)])
    stages = pd.DataFrame(
        [make_stage(lead_id=f"L-{i}", stage="sql", occurred_at=start + pd.Timedelta(days=i + 5)) for i in range(0, 40, 3)]
        + [make_stage(lead_id="L-1", stage="recycled", occurred_at=pd.Timestamp("2026-06-01T00:00:00Z"))]  # windows closed
    )
    write_tables(settings.data_dir, CanonicalTables(leads=leads, events=empty_events(), stages=stages))
    records = RecordStore.from_settings(settings)
    try:
        assert staleness(settings, Inbox.of(records)).tables_changed  # never built
        data = prepare(settings, definitions, feature_service="probe")
        assert not staleness(settings, Inbox.of(records))
    finally:
        records.close()
    assert data.n_leads() == 40 and "rebuilt" in data.freshness and data.frame["industry"].eq("Software").all()


def test_only_open_windows_is_refused(settings: Settings, definitions: Definitions) -> None:
    created = pd.Timestamp("2026-01-01T00:00:00Z")
    leads = pd.DataFrame([make_lead(lead_id=f"L-{i}", created_at=created + pd.Timedelta(days=i)) for i in range(10)])
    stages = pd.DataFrame([make_stage(lead_id=f"L-{i}", occurred_at=created + pd.Timedelta(days=i)) for i in range(10)])
    write_tables(settings.data_dir, CanonicalTables(leads=leads, events=empty_events(), stages=stages))
    with pytest.raises(TrainingError, match="closed label window"):
        prepare(settings, definitions, feature_service="probe")


def test_sales_feedback_is_in_the_next_labels(settings: Settings, definitions: Definitions) -> None:
    created = pd.Timestamp("2025-01-01T00:00:00Z")
    leads = pd.DataFrame([make_lead(lead_id=f"L-{i}", created_at=created + pd.Timedelta(days=i)) for i in range(3)])
    stages = pd.DataFrame([make_stage(lead_id=f"L-{i}", occurred_at=created + pd.Timedelta(days=i)) for i in range(3)])
    write_tables(settings.data_dir, CanonicalTables(leads=leads, events=empty_events(), stages=stages))
    now = pd.Timestamp("2026-01-01T00:00:00Z")
    before = load_labels(settings, definitions, now).labels.labels.set_index("lead_id")
    assert before["label"].sum() == 0
    store = RecordStore.from_settings(settings)
    store.add_feedback(Feedback("L-1", "sql", (created + pd.Timedelta(days=20)).to_pydatetime()))
    store.add_feedback(Feedback("L-2", "disqualified", (created + pd.Timedelta(days=9)).to_pydatetime(), reason="no_budget"))
    store.close()
    after = load_labels(settings, definitions, now).labels.labels.set_index("lead_id")
    assert after.loc["L-1", "label"] == 1 and after.loc["L-0", "label"] == 0
    assert after.loc["L-2", "disqualified_reason"] == "no_budget"

"""What `train` says when the workspace is not ready, and how overrides are checked."""

from __future__ import annotations

import pandas as pd
import pytest

from features.definitions import Definitions
from features.settings import Settings
from features.tables import CanonicalTables, empty_events, write_tables
from tests.conftest import make_lead, make_stage
from training.pipeline import TrainingError, prepare, train


def test_unknown_option_is_named(settings: Settings, definitions: Definitions) -> None:
    with pytest.raises(TypeError, match="num_leafs"):
        train(settings, definitions, progress=False, num_leafs=3)


def test_no_data_says_what_to_run(settings: Settings, definitions: Definitions) -> None:
    with pytest.raises(FileNotFoundError, match="samepage demo"):
        prepare(settings, definitions)


def test_no_features_says_what_to_run(settings: Settings, definitions: Definitions) -> None:
    leads = pd.DataFrame([make_lead(lead_id=f"L-{i}", created_at=pd.Timestamp("2025-01-01T00:00:00Z") + pd.Timedelta(days=i)) for i in range(40)])
    stages = pd.DataFrame([make_stage(lead_id=f"L-{i}", occurred_at=pd.Timestamp("2026-06-01T00:00:00Z")) for i in range(40)])
    write_tables(settings.data_dir, CanonicalTables(leads=leads, events=empty_events(), stages=stages))
    with pytest.raises(TrainingError, match="samepage features"):
        prepare(settings, definitions, feature_service="probe")


def test_only_open_windows_is_refused(settings: Settings, definitions: Definitions) -> None:
    created = pd.Timestamp("2026-01-01T00:00:00Z")
    leads = pd.DataFrame([make_lead(lead_id=f"L-{i}", created_at=created + pd.Timedelta(days=i)) for i in range(10)])
    stages = pd.DataFrame([make_stage(lead_id=f"L-{i}", occurred_at=created + pd.Timedelta(days=i)) for i in range(10)])
    write_tables(settings.data_dir, CanonicalTables(leads=leads, events=empty_events(), stages=stages))
    with pytest.raises(TrainingError, match="closed label window"):
        prepare(settings, definitions, feature_service="probe")

"""The training set as `prepare` builds it: snapshots with point-in-time features, split by lead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.store import build_features
from samepage.definitions import Definitions
from samepage.demo import write_demo
from samepage.settings import Settings
from tests.conftest import DEFINITIONS_FILE
from training.data import TrainingData, prepare


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, definitions: Definitions) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("data") / "workspace", definitions=DEFINITIONS_FILE, _env_file=None)
    write_demo(settings, definitions, n_leads=800, seed=3)
    build_features(settings, definitions, progress=False)
    return settings


@pytest.fixture(scope="module")
def data(workspace: Settings, definitions: Definitions) -> TrainingData:
    return prepare(workspace, definitions, feature_service="probe_snapshots")


def test_rows_are_snapshots_with_features_as_of_each(data: TrainingData) -> None:
    frame = data.frame
    assert {"lead_id", "as_of", "entry_as_of", "snapshot_day", "age_days"} <= set(frame.columns)
    assert set(frame["snapshot_day"]) == {0, 7, 30, 90}
    assert frame["lead_id"].duplicated().any() and not frame[["lead_id", "as_of"]].duplicated().any()
    # The age feature is read from the store at each snapshot's own as-of time.
    np.testing.assert_allclose(frame["days_since_created"], frame["age_days"], atol=1e-6)
    # Later snapshots of one lead: the lead is older, and what it did since entry is counted.
    later = frame.loc[frame["snapshot_day"] == 90]
    assert (later["days_since_created"] >= 90).all()
    rate = frame.groupby("snapshot_day")["label"].mean()
    assert rate[90] < rate[0]  # most leads that qualify do so within weeks: fewer left to qualify later


def test_each_lead_sits_in_one_part(data: TrainingData) -> None:
    assert (data.frame.groupby("lead_id")["part"].nunique() == 1).all()
    X, y = data.rows("test", entry_only=True)
    assert len(X) == data.n_leads("test") == len(y)
    assert data.n_test > data.n_leads("test")  # the test part keeps the later snapshots too


def test_age_summary_says_which_ages_are_covered(data: TrainingData) -> None:
    summary = data.age_summary("train", "calibration")
    assert summary["rows"] == data.n_train == sum(summary["rows_by_age"].values())
    assert summary["leads"] == data.n_leads("train", "calibration")
    assert summary["rows_by_snapshot_day"].keys() == {"0", "7", "30", "90"}
    ages = data.frame.loc[data.frame["part"] != "test", "age_days"]
    assert summary["age_days"]["max"] == round(float(ages.max()), 1) and summary["age_days"]["min"] == round(float(ages.min()), 1)
    text = data.describe_ages()
    assert f"{len(data.frame):,} rows" in text and "label window 180 days" in text


def test_entry_only_training_set(workspace: Settings, definitions: Definitions, data: TrainingData) -> None:
    entry = prepare(workspace, definitions, feature_service="probe_snapshots", snapshot_days=())
    assert (entry.frame["snapshot_day"] == 0).all() and entry.frame["lead_id"].is_unique
    assert entry.n_leads() == data.n_leads()
    first = data.frame.loc[data.frame["snapshot_day"] == 0].set_index("lead_id")["label"]
    assert entry.frame.set_index("lead_id")["label"].sort_index().equals(first.sort_index())


def test_the_duckdb_offline_store_answers_as_feasts_file_store(
    workspace: Settings, definitions: Definitions, data: TrainingData
) -> None:
    """Training reads through Feast's DuckDB offline store (the file store's Dask join held ~8 GiB
    for 100,000 leads); on the demo's snapshots both of Feast's stores give the same training frame."""
    from features.feast_repo import file_offline_store, open_store
    from features.store import training_frame

    assert open_store(workspace).config.offline_store.type == "duckdb"
    file = file_offline_store(workspace)
    assert file.config.offline_store.type == "file"
    snapshots = data.frame[["lead_id", "as_of"]]
    assert len(snapshots) > 1000 and snapshots["lead_id"].duplicated().any()  # leads at several as-of times
    through_file = training_frame(workspace, definitions, snapshots, feature_service=data.feature_service, store=file)
    keys = definitions.feature_keys
    assert data.frame[keys].notna().any().all()  # every feature has values: nothing compared is all missing
    pd.testing.assert_frame_equal(data.frame[["lead_id", "as_of", *keys]], through_file[["lead_id", "as_of", *keys]])

"""`train` on demo data a model should not be trusted with: outcomes shuffled (nothing promoted, and
it says why) and a newest quarter that drifted (named under `drift`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.store import build_features
from samepage.definitions import Definitions
from samepage.demo import write_demo
from samepage.settings import Settings
from samepage.tables import CanonicalTables, read_tables, write_tables
from tests.conftest import DEFINITIONS_FILE
from training import registry
from training.pipeline import TrainResult, load_labels, train

pytestmark = pytest.mark.slow
QUICK = {"num_boost_round": 60, "n_boot": 100}


def demo_workspace(tmp_path_factory: pytest.TempPathFactory, defs: Definitions, name: str) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp(name) / "workspace", definitions=DEFINITIONS_FILE, _env_file=None)
    write_demo(settings, defs, n_leads=2500, seed=3)
    return settings


def shuffle_outcomes(settings: Settings) -> None:
    """Give each lead another lead's stage history, at the same offsets from its own creation."""
    tables = read_tables(settings.data_dir)
    leads, stages = tables.leads, tables.stages.copy()
    created = leads.set_index("lead_id")["created_at"]
    rng = np.random.default_rng(0)
    ids = leads["lead_id"].to_numpy()
    new_id = dict(zip(ids, rng.permutation(ids), strict=True))
    offset = stages["occurred_at"] - stages["lead_id"].map(created)
    stages["lead_id"] = stages["lead_id"].map(new_id)
    stages["occurred_at"] = stages["lead_id"].map(created) + offset
    write_tables(settings.data_dir, CanonicalTables(leads=leads, events=tables.events, stages=stages))


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory: pytest.TempPathFactory, definitions: Definitions) -> tuple[Settings, TrainResult]:
    settings = demo_workspace(tmp_path_factory, definitions, "shuffled")
    shuffle_outcomes(settings)
    build_features(settings, definitions, progress=False)
    return settings, train(settings, definitions, progress=False, **QUICK)


def test_shuffled_outcomes_promote_nothing_and_say_why(shuffled: tuple[Settings, TrainResult]) -> None:
    settings, result = shuffled
    out = result.as_json()
    assert out["promoted"] is False
    reason = out["promotion_reason"]
    assert reason.startswith("not promoted") and "no champion yet" in reason
    assert "coin flip" in reason or "does not beat" in reason or "wins the backtest" in reason
    lo, hi = out["backtest"]["roc_auc_ci"]
    assert lo < 0.5 + 0.1 and lo <= out["backtest"]["roc_auc"] <= hi
    assert registry.champion_version(registry.client_for(settings)) is None  # still no champion


def drift_newest_quarter(settings: Settings, defs: Definitions) -> None:
    """Newest quarter of the labelled leads: 40x the employees and far more of them reach SQL."""
    labelled = load_labels(settings, defs).labels.labels
    newest = labelled.sort_values("as_of")["lead_id"].iloc[-len(labelled) // 4 :]
    tables = read_tables(settings.data_dir)
    leads = tables.leads.copy()
    hit = leads["lead_id"].isin(newest)
    leads.loc[hit, "employees"] = leads.loc[hit, "employees"] * 40 + 50_000
    rng = np.random.default_rng(1)
    chosen = leads.loc[hit].sample(frac=0.6, random_state=1)
    extra = pd.DataFrame(
        {
            "lead_id": chosen["lead_id"].to_numpy(),
            "stage": "sql",
            "occurred_at": chosen["created_at"].reset_index(drop=True)
            + pd.to_timedelta(rng.integers(1, 20, len(chosen)), unit="D"),
            "reason": None,
        }
    )
    stages = pd.concat([tables.stages, extra.astype({"occurred_at": tables.stages["occurred_at"].dtype})], ignore_index=True)
    write_tables(settings.data_dir, CanonicalTables(leads=leads, events=tables.events, stages=stages))


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory, definitions: Definitions) -> TrainResult:
    settings = demo_workspace(tmp_path_factory, definitions, "drifted")
    drift_newest_quarter(settings, definitions)
    build_features(settings, definitions, progress=False)
    return train(settings, definitions, progress=False, **QUICK)


def test_drift_names_the_shifted_feature_and_the_base_rate(drifted: TrainResult) -> None:
    drift = drifted.as_json()["drift"]
    rate = drift["base_rate"]
    assert rate["recent"] > 1.5 * rate["train"]
    assert any(w.startswith("base rate changed") for w in drift["warnings"])
    employees = next(f for f in drift["features"] if f["feature"] == "employees")
    # The history holds the older part of the shifted quarter, so the range has moved too: PSI tells.
    assert employees["psi"] > 0.25
    assert any("(employees)" in w and "PSI" in w for w in drift["warnings"])
    # Features nobody touched are not called drifted.
    assert not any("(unsubscribes_90d)" in w and "PSI" in w for w in drift["warnings"])

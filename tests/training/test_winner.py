"""Whatever wins the backtest is registered: a planted linear signal makes logistic regression the
champion, and the service explains it exactly. And one training at a time per workspace."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from features.store import build_features
from samepage.definitions import Definitions
from samepage.demo import write_demo
from samepage.locks import WorkspaceBusy, workspace_lock
from samepage.settings import Settings
from samepage.tables import CanonicalTables, read_tables, write_tables
from samepage.values import logit
from serving.scorer import Scorer
from tests.conftest import DEFINITIONS_FILE
from training import registry
from training.pipeline import LOCK_NAME, TrainResult, train


def plant_linear_outcomes(settings: Settings) -> None:
    """SQL within 60 days with log-odds linear in log revenue and log employees (what a logistic
    regression draws exactly); every other stage after `lead` is dropped."""
    tables = read_tables(settings.data_dir)
    leads = tables.leads
    rng = np.random.default_rng(7)

    def z(column: str) -> np.ndarray:
        x = np.log1p(leads[column].astype(float).to_numpy())
        return np.nan_to_num((x - np.nanmean(x)) / np.nanstd(x))

    p = 1 / (1 + np.exp(-(-1.0 + 1.6 * z("annual_revenue") + 0.8 * z("employees"))))
    hit = rng.random(len(leads)) < p
    sql = pd.DataFrame(
        {
            "lead_id": leads.loc[hit, "lead_id"].to_numpy(),
            "stage": "sql",
            "occurred_at": leads.loc[hit, "created_at"].reset_index(drop=True)
            + pd.to_timedelta(rng.uniform(1, 60, int(hit.sum())), unit="D"),
            "reason": None,
        }
    ).astype({"occurred_at": tables.stages["occurred_at"].dtype})
    kept = tables.stages.loc[tables.stages["stage"] == "lead"]
    stages = pd.concat([kept, sql], ignore_index=True)
    write_tables(settings.data_dir, CanonicalTables(leads=leads, events=tables.events, stages=stages))


@pytest.fixture(scope="module")
def linear(tmp_path_factory: pytest.TempPathFactory, definitions: Definitions) -> tuple[Settings, TrainResult]:
    settings = Settings(home=tmp_path_factory.mktemp("linear") / "workspace", definitions=DEFINITIONS_FILE, _env_file=None)
    write_demo(settings, definitions, n_leads=2500, seed=4)
    plant_linear_outcomes(settings)
    build_features(settings, definitions, progress=False)
    return settings, train(settings, definitions, progress=False, num_boost_round=60, n_boot=100)


@pytest.mark.slow
def test_a_logistic_regression_that_wins_is_the_champion(linear: tuple[Settings, TrainResult]) -> None:
    settings, result = linear
    out = result.as_json()
    assert out["backtest"]["model"] == "logreg"
    assert out["promoted"] is True and "Logistic regression won the backtest" in out["promotion_reason"]
    assert "clears the quality floor" in out["promotion_reason"]
    client = registry.client_for(settings)
    champion = registry.champion_version(client)
    assert champion is not None and str(champion.version) == result.model_version
    bundle = registry.load_bundle(f"models:/{registry.MODEL_NAME}@champion")
    assert bundle.kind == "logreg" and bundle.meta["C"] == 1.0 and bundle.meta["min_frequency"] == 20
    assert bundle.meta["rows"] == out["n_train"]  # fit on every labelled row


@pytest.mark.slow
def test_the_logistic_champion_explains_each_score_exactly(
    linear: tuple[Settings, TrainResult], definitions: Definitions
) -> None:
    settings, result = linear
    scorer = Scorer(settings, definitions)
    scorer.refresh()
    assert scorer.current().version == result.model_version
    leads = read_tables(settings.data_dir).leads["lead_id"].head(25).tolist()
    answers = scorer.score([(lead_id, {}) for lead_id in leads])
    assert {a["model"]["kind"] for a in answers} == {"learned"}
    for answer in answers:
        exp = answer["explanation"]
        total = exp["base_value"] + sum(c["contribution"] for c in exp["contributions"])
        assert abs(total - logit(answer["score"])) < 1e-9
    assert len({a["score"] for a in answers}) > 1


def test_a_held_lock_makes_a_second_training_give_up(settings: Settings, definitions: Definitions) -> None:
    with workspace_lock(settings, LOCK_NAME), pytest.raises(WorkspaceBusy, match="busy"):
        train(settings, definitions, progress=False, lock_wait_seconds=0.3)


def test_a_second_training_waits_for_the_lock(settings: Settings, definitions: Definitions) -> None:
    released = threading.Event()

    def hold() -> None:
        with workspace_lock(settings, LOCK_NAME):
            time.sleep(0.6)
        released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.1)
    started = time.monotonic()
    # The empty workspace cannot train: reaching that error means the lock was waited for, then taken.
    with pytest.raises(FileNotFoundError, match="no leads"):
        train(settings, definitions, progress=False, lock_wait_seconds=5)
    holder.join()
    assert released.is_set() and time.monotonic() - started >= 0.4

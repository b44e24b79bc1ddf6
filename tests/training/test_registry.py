"""End to end on a small demo workspace: demo → Feast features → train → MLflow run and registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.store import build_features
from samepage.definitions import Definitions, parse_definitions
from samepage.demo import write_demo
from samepage.settings import Settings
from tests.conftest import DEFINITIONS_FILE
from training import registry
from training.pipeline import TrainingData, TrainResult, compare_with_champion, fit_candidate, prepare, register, train

pytestmark = pytest.mark.slow
FEW_TREES = {"num_boost_round": 40, "num_leaves": 7, "min_data_in_leaf": 20}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, definitions: Definitions) -> Settings:
    home = tmp_path_factory.mktemp("train") / "workspace"
    settings = Settings(home=home, definitions=DEFINITIONS_FILE, _env_file=None)
    write_demo(settings, definitions, n_leads=3000, seed=7)
    build_features(settings, definitions, progress=False)
    return settings


@pytest.fixture(scope="module")
def first(workspace: Settings, definitions: Definitions) -> TrainResult:
    # 3,000 demo leads: logistic regression wins the backtest, so the floor alone would promote
    # nothing (tests/training/test_trust.py checks that); these tests need a LightGBM champion.
    return train(workspace, definitions, progress=False, quality_floor=False, kind="lightgbm", **FEW_TREES)


@pytest.fixture(scope="module")
def client(workspace: Settings, first: TrainResult) -> MlflowClient:
    return registry.client_for(workspace)


def test_json_has_the_contract_keys(first: TrainResult, definitions: Definitions) -> None:
    out = first.as_json()
    assert set(out) == {
        "run_id", "model_name", "model_version", "promoted", "definitions_version",
        "n_train", "n_test", "metrics", "threshold", "split", "promotion_reason", "backtest", "drift",
        "training_ages",
    }  # fmt: skip
    # Rows vs leads: n_train counts snapshot rows, n_test the newest slice's leads (one entry row each).
    ages = out["training_ages"]
    assert ages["rows"] == out["n_train"] and ages["leads"] < ages["rows"]
    assert out["n_test"] == out["backtest"]["folds"][-1]["test_leads"] < out["backtest"]["folds"][-1]["n_test"]
    assert out["split"] == "time" and "quality floor was switched off" in out["promotion_reason"]
    assert {"folds", "roc_auc", "roc_auc_ci"} <= set(out["backtest"]) and len(out["backtest"]["folds"]) == 4
    lo, hi = out["backtest"]["roc_auc_ci"]
    assert lo <= out["backtest"]["roc_auc"] <= hi
    assert {"base_rate", "features", "warnings"} <= set(out["drift"])
    assert set(out["drift"]["base_rate"]) == {"train", "recent"}
    assert {"feature", "psi", "out_of_range_share"} <= set(out["drift"]["features"][0])
    assert set(out["metrics"]) == {
        "test_roc_auc", "test_pr_auc", "test_brier", "test_log_loss", "test_top_decile_lift",
        "baseline_points_roc_auc", "baseline_logreg_roc_auc",
    }  # fmt: skip
    assert set(out["threshold"]) == {"value", "expected_mql_per_week", "expected_sql_rate"}
    assert out["model_name"] == "sql_likelihood" and out["promoted"] is True
    assert out["definitions_version"] == definitions.version_string
    assert out["n_train"] > out["n_test"] > 0
    assert 0.5 < out["metrics"]["test_roc_auc"] <= 1.0


def test_run_carries_definitions_version_and_artifacts(
    client: MlflowClient, first: TrainResult, definitions: Definitions
) -> None:
    run = client.get_run(first.run_id)
    assert run.data.tags["definitions_version"] == definitions.version_string
    assert run.data.tags["fingerprint"] == definitions.fingerprint
    assert run.data.tags["split"] == "time"
    assert run.data.tags["feature_service"] == run.data.params["feature_service"]
    assert "test_roc_auc" in run.data.metrics and "threshold_expected_sql_rate" in run.data.metrics
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "samepage"
    files = {f.path for f in client.list_artifacts(first.run_id, "definitions")}
    assert files == {"definitions/definitions.yaml"}
    local = Path(client.download_artifacts(first.run_id, "definitions/definitions.yaml"))
    assert local.read_text() == DEFINITIONS_FILE.read_text()
    charts = {f.path for f in client.list_artifacts(first.run_id, "charts")}
    assert {"charts/reliability.png", "charts/lift.png", "charts/gain.png", "charts/feature_importance.png"} <= charts
    assert "charts/backtest_folds.png" in charts
    metrics = {"backtest_roc_auc", "backtest_roc_auc_ci_lo", "backtest_ece", "backtest_logreg_roc_auc", "drift_base_rate_recent"}
    assert metrics <= set(run.data.metrics)
    backtest_files = {f.path for f in client.list_artifacts(first.run_id, "backtest")}
    assert {"backtest/backtest_folds.csv", "backtest/drift.json", "backtest/selection.json"} <= backtest_files
    assert "last backtest fold" in run.data.tags["test_rows"] and "drift_warnings" in run.data.tags


def test_version_tags_serving_relies_on(client: MlflowClient, first: TrainResult, definitions: Definitions) -> None:
    version = client.get_model_version("sql_likelihood", first.model_version)
    for key in registry.VERSION_TAGS:
        assert version.tags.get(key), key
    assert version.tags["fingerprint"] == definitions.fingerprint
    assert pd.Timestamp(version.tags["data_from"]) < pd.Timestamp(version.tags["data_to"])
    assert str(client.get_model_version_by_alias("sql_likelihood", "champion").version) == first.model_version


def test_registered_model_loads_and_predicts(workspace: Settings, first: TrainResult, definitions: Definitions) -> None:
    model = mlflow.pyfunc.load_model("models:/sql_likelihood@champion")
    example = model.input_example
    assert isinstance(example, pd.DataFrame) and list(example.columns) == definitions.feature_keys
    scores = model.predict(example)["score"].to_numpy()
    assert np.all((scores > 0) & (scores < 1))
    bundle = model.unwrap_python_model().bundle
    np.testing.assert_allclose(scores, bundle.predict_proba(example))
    assert bundle.meta["definitions_version"] == definitions.version_string
    assert set(bundle.meta["drift"]) >= {"base_rate", "features", "warnings"}
    ranges = bundle.meta["feature_ranges"]
    assert "employees" in ranges and "industry" not in ranges and ranges["employees"][0] <= ranges["employees"][1]
    # Unknown values may be null; a missing column is refused by the signature, naming it.
    blanks = example.assign(industry=None, employees=np.nan)
    assert np.all(np.isfinite(model.predict(blanks)["score"].to_numpy()))
    with pytest.raises(MlflowException, match="country"):
        model.predict(example.drop(columns=["country"]))


@pytest.fixture(scope="module")
def data(workspace: Settings, definitions: Definitions, first: TrainResult) -> TrainingData:
    return prepare(workspace, definitions, feature_service="sql_likelihood_gate_test")


def test_worse_model_is_not_promoted(client: MlflowClient, workspace: Settings, data: TrainingData, first: TrainResult) -> None:
    weak = fit_candidate(data, {"num_boost_round": 1, "num_leaves": 2, "early_stopping_rounds": 0})
    side_by_side = compare_with_champion(workspace, data, weak)
    assert list(side_by_side.index) == ["candidate", f"champion v{first.model_version}"]
    assert side_by_side.loc["candidate", "roc_auc"] < side_by_side.iloc[1]["roc_auc"]
    result = register(workspace, data, weak)
    assert result.promoted is False
    assert result.metrics["test_roc_auc"] < first.metrics["test_roc_auc"]
    assert str(client.get_model_version_by_alias("sql_likelihood", "champion").version) == first.model_version
    reason = client.get_model_version("sql_likelihood", result.model_version).tags["promotion"]
    assert "does not beat" in reason and f"v{first.model_version}" in reason
    assert client.get_run(result.run_id).data.tags["promotion"] == reason


def test_champion_of_other_definitions_is_replaced(client: MlflowClient, definitions: Definitions, data: TrainingData) -> None:
    changed = yaml.safe_load(DEFINITIONS_FILE.read_text())
    changed["label"]["window_days"] = 90
    other = parse_definitions(changed)
    assert other.fingerprint != definitions.fingerprint
    X_test, y_test = data.rows("test")
    gate = registry.decide_promotion(client, other, 0.0, X_test, y_test)
    assert gate.promote is True and "cannot serve" in gate.reason
    same = registry.decide_promotion(client, definitions, 1.0, X_test, y_test)
    assert same.promote is True and same.champion_roc_auc is not None and "beats" in same.reason


def test_registered_model_learned_from_every_labelled_row(first: TrainResult, data: TrainingData) -> None:
    bundle = registry.load_bundle(f"models:/sql_likelihood/{first.model_version}")
    assert first.n_train == len(data.frame)  # the newest window included: no slice held back
    last_fold = first.as_json()["backtest"]["folds"][-1]
    # n_test: the newest slice's leads (one entry row each), fewer than its snapshot rows.
    assert first.n_test == last_fold["test_leads"] < last_fold["n_test"] and last_fold["n_train"] < first.n_train
    # test_* and the capacity threshold read the same entry rows: the positive rate is the leads'.
    assert first.metrics["test_positive_rate"] == pytest.approx(last_fold["test_positives"] / last_fold["test_leads"])
    chosen = first.threshold.capacity.share_of_leads * first.n_test  # a whole number of the n_test leads
    assert chosen == pytest.approx(round(chosen)) and chosen >= 1
    calibration = bundle.meta["calibration"]
    assert calibration["method"] == "platt on out-of-fold margins" and calibration["rows"] == len(data.frame)
    assert pd.Timestamp(bundle.meta["data_to"]) == data.frame["as_of"].max()

"""`samepage train` as separate steps a notebook can call one by one.

    data = prepare(settings, defs)                       # labels, point-in-time features, split
    bundle = fit_candidate(data, {"num_leaves": 15})     # LightGBM + Platt
    ev = evaluate(data, bundle)                          # metrics, baselines, threshold, charts
    compare_with_champion(settings, data, bundle)        # same test rows, side by side
    result = register(settings, data, bundle, ev)        # MLflow run, version, champion gate

`train(settings, defs)` runs them all. The training set always comes through the feature store
(`features.store.training_frame`) and the stage history through `samepage.records`, so sales
feedback recorded through the API is in the next training set.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from samepage.bundle import ModelBundle
from samepage.definitions import Definitions
from samepage.settings import Settings
from training import baselines as bl
from training import evaluate as ev_mod
from training import registry, tracking
from training.data import Outcomes, TrainingData, TrainingError, load_labels, prepare, step
from training.models import LightGBMParams, fit_lightgbm
from training.threshold import ThresholdAdvice, capacity_threshold

__all__ = [
    "Baselines", "Evaluation", "Outcomes", "TrainResult", "TrainingData", "TrainingError",
    "compare_with_champion", "evaluate", "fit_baselines", "fit_candidate", "load_labels", "prepare",
    "register", "train",
]  # fmt: skip

CONTRACT_METRICS = (
    "test_roc_auc",
    "test_pr_auc",
    "test_brier",
    "test_log_loss",
    "test_top_decile_lift",
    "baseline_points_roc_auc",
    "baseline_logreg_roc_auc",
)
PREPARE_OPTIONS = {"now", "test_fraction", "calibration_fraction", "seed", "weekly_leads", "feature_service"}


# -- models ---------------------------------------------------------------------------------
def fit_candidate(data: TrainingData, params: LightGBMParams | dict[str, Any] | None = None) -> ModelBundle:
    """LightGBM on the train part, early stopping and Platt scaling on the calibration slice."""
    if not isinstance(params, LightGBMParams):
        given = dict(params or {})
        given.setdefault("seed", data.seed)
        params = LightGBMParams(**given)
    X, y = data.rows("train")
    X_cal, y_cal = data.rows("calibration")
    d_from, d_to = data.data_range
    meta = {
        "definitions_version": data.defs.version_string,
        "fingerprint": data.defs.fingerprint,
        "feature_service": data.feature_service,
        "trained_at": _now_iso(),
        "data_from": d_from.isoformat(),
        "data_to": d_to.isoformat(),
        "split": data.split.kind,
        "feature_labels": data.defs.feature_labels,
    }
    return fit_lightgbm(data.defs, X, y, X_cal, y_cal, params, meta)


@dataclass
class Baselines:
    points_rules: list[dict[str, Any]]
    logreg: Any


def fit_baselines(data: TrainingData) -> Baselines:
    """Both baselines on the same train period the candidate saw (points rules need no fitting)."""
    X, y = data.rows("train", "calibration")
    return Baselines(bl.points_rules(data.defs), bl.fit_logreg(data.defs, X, y))


# -- evaluation -----------------------------------------------------------------------------
@dataclass
class Evaluation:
    metrics: dict[str, float]
    test_scores: dict[str, np.ndarray]
    threshold: ThresholdAdvice
    importance: pd.DataFrame
    gains: pd.DataFrame
    charts: dict[str, Path] = field(default_factory=dict)


def evaluate(
    data: TrainingData, bundle: ModelBundle, baselines: Baselines | None = None, charts_dir: Path | None = None
) -> Evaluation:
    """Candidate and baselines on the test rows; charts are drawn when `charts_dir` is given."""
    baselines = baselines or fit_baselines(data)
    X_test, y_test = data.rows("test")
    p = bundle.predict_proba(X_test)
    scores = {
        "LightGBM (calibrated)": p,
        "Points rules": bl.points_score(data.defs, X_test),
        "Logistic regression": bl.logreg_proba(data.defs, baselines.logreg, X_test),
    }
    metrics = {f"test_{k}": v for k, v in ev_mod.score_metrics(y_test, p).items()}
    metrics.update({f"baseline_points_{k}": v for k, v in ev_mod.ranking_metrics(y_test, scores["Points rules"]).items()})
    metrics.update({f"baseline_logreg_{k}": v for k, v in ev_mod.score_metrics(y_test, scores["Logistic regression"]).items()})
    X_train, y_train = data.rows("train")
    metrics["train_roc_auc"] = ev_mod.score_metrics(y_train, bundle.predict_proba(X_train))["roc_auc"]
    metrics["test_positive_rate"] = float(y_test.mean())
    advice = capacity_threshold(data.defs, y_test, p, data.weekly_leads, data.volume_basis)
    metrics.update(advice.metrics())
    importance = ev_mod.importance_summary(data.defs, bundle, X_test)
    gains = ev_mod.gains_table(y_test, p)
    result = Evaluation(metrics, scores, advice, importance, gains)
    if charts_dir is not None:
        short = data.defs.label.target_stage.upper()
        probabilities = {k: v for k, v in scores.items() if k != "Points rules"}
        result.charts = {
            "reliability": ev_mod.reliability_chart(y_test, probabilities, short, charts_dir / "reliability.png"),
            "lift": ev_mod.lift_chart(y_test, scores, short, charts_dir / "lift.png"),
            "gain": ev_mod.gain_chart(y_test, scores, short, charts_dir / "gain.png"),
            "roc": ev_mod.roc_chart(y_test, scores, charts_dir / "roc.png"),
            "importance": ev_mod.importance_chart(importance, charts_dir / "feature_importance.png"),
        }
    return result


def compare_with_champion(settings: Settings, data: TrainingData, bundle: ModelBundle) -> pd.DataFrame:
    """Candidate and current champion scored on the same test rows (what the gate will compare).

    One row per model with the test metrics; no champion → only the candidate's row.
    """
    client = registry.client_for(settings)
    X_test, y_test = data.rows("test")
    rows = [{"model": "candidate", **ev_mod.score_metrics(y_test, bundle.predict_proba(X_test))}]
    current = registry.champion_version(client)
    if current is not None:
        champion = registry.load_bundle(f"models:/{registry.MODEL_NAME}/{current.version}")
        same = (current.tags or {}).get("fingerprint") == data.defs.fingerprint
        label = f"champion v{current.version}" + ("" if same else " (other definitions: cannot serve these)")
        rows.append({"model": label, **ev_mod.score_metrics(y_test, champion.predict_proba(X_test))})
    return pd.DataFrame(rows).set_index("model")


# -- MLflow ---------------------------------------------------------------------------------
@dataclass
class TrainResult:
    run_id: str
    model_name: str
    model_version: str
    promoted: bool
    promotion_reason: str
    definitions_version: str
    n_train: int
    n_test: int
    split: str
    metrics: dict[str, float]
    threshold: ThresholdAdvice
    seconds: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Exactly the contract's `samepage train --json` object."""
        return {
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "promoted": self.promoted,
            "definitions_version": self.definitions_version,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "metrics": {k: float(self.metrics[k]) for k in CONTRACT_METRICS},
            "threshold": {
                "value": self.threshold.capacity.value,
                "expected_mql_per_week": self.threshold.capacity.expected_mql_per_week,
                "expected_sql_rate": self.threshold.capacity.expected_sql_rate,
            },
        }


def register(
    settings: Settings,
    data: TrainingData,
    bundle: ModelBundle,
    evaluation: Evaluation | None = None,
    baselines: Baselines | None = None,
    params: dict[str, Any] | None = None,
) -> TrainResult:
    """One MLflow run: params, metrics, charts, the definitions file, the pyfunc; register the
    version, tag it, and move `champion` only if the champion gate says so."""
    from samepage.bundle import BundlePyfunc

    defs = data.defs
    client = registry.client_for(settings)
    with tempfile.TemporaryDirectory(prefix="samepage-train-") as tmp:
        out = Path(tmp)
        baselines = baselines or fit_baselines(data)
        if evaluation is None or not evaluation.charts:
            evaluation = evaluate(data, bundle, baselines, charts_dir=out / "charts")
        X_test, y_test = data.rows("test")
        gate = registry.decide_promotion(client, defs, evaluation.metrics["test_roc_auc"], X_test, y_test)
        registry.describe_registered_model(client)
        tags = tracking.run_tags(data, bundle, gate.reason)
        experiment = client.get_experiment_by_name(registry.EXPERIMENT)
        assert experiment is not None, "client_for creates the experiment"
        run_name = f"{registry.MODEL_NAME} {defs.version_string} {data.split.kind}"
        with tracking.mlflow_run(experiment.experiment_id, run_name, tags) as run:
            import mlflow

            mlflow.log_params(tracking.run_params(data, bundle, params))
            mlflow.log_metrics(evaluation.metrics)
            if gate.champion_roc_auc is not None:
                mlflow.log_metric("champion_test_roc_auc", gate.champion_roc_auc)
            tracking.write_evaluation_tables(out / "tables", data, evaluation.importance, evaluation.gains, evaluation.threshold, baselines.points_rules)
            mlflow.log_artifacts(str(out / "tables"), "evaluation")
            for chart in evaluation.charts.values():
                mlflow.log_artifact(str(chart), "charts")
            mlflow.log_artifact(str(tracking.definitions_artifact(settings, defs, out)), "definitions")
            bundle_dir = bundle.save(out / "bundle")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=BundlePyfunc(),
                artifacts={"bundle": str(bundle_dir)},
                signature=registry.model_signature(defs),
                input_example=registry.input_example(defs, X_test),
                pip_requirements=registry.pip_requirements(),
                registered_model_name=registry.MODEL_NAME,
            )
            version = str(info.registered_model_version)
            registry.set_version_tags(client, version, tags)
            if gate.promote:
                registry.promote(client, version)
            mlflow.set_tag("model_version", version)
            run_id = run.info.run_id
    return TrainResult(
        run_id=run_id,
        model_name=registry.MODEL_NAME,
        model_version=version,
        promoted=gate.promote,
        promotion_reason=gate.reason,
        definitions_version=defs.version_string,
        n_train=data.n_train,
        n_test=data.n_test,
        split=data.split.kind,
        metrics=evaluation.metrics,
        threshold=evaluation.threshold,
    )


# -- the whole job --------------------------------------------------------------------------
def train(settings: Settings, defs: Definitions, progress: bool = True, **overrides: Any) -> TrainResult:
    """prepare → fit_candidate → baselines → evaluate → register (the `samepage train` command).

    `overrides`: any `prepare` option (now, test_fraction, calibration_fraction, seed,
    weekly_leads, feature_service) or LightGBM hyper-parameter (see `LightGBMParams`).
    """
    unknown = set(overrides) - PREPARE_OPTIONS - set(LightGBMParams.model_fields)
    if unknown:
        raise TypeError(f"train: unknown options {sorted(unknown)}")
    prep = {k: v for k, v in overrides.items() if k in PREPARE_OPTIONS}
    params = LightGBMParams(**{"seed": prep.get("seed", 42), **{k: v for k, v in overrides.items() if k in LightGBMParams.model_fields}})
    columns = [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
    started = time.perf_counter()
    with Progress(*columns, console=Console(stderr=True), disable=not progress, transient=False) as bar:
        shown = bar if progress else None
        data = prepare(settings, defs, progress=shown, **prep)
        timings = dict(data.timings)
        with step(shown, f"Training LightGBM on {data.split.counts['train']:,} leads ({data.split.kind} split)", timings):
            bundle = fit_candidate(data, params)
        with step(shown, "Fitting the baselines (points rules, logistic regression)", timings):
            baselines = fit_baselines(data)
        with tempfile.TemporaryDirectory(prefix="samepage-charts-") as tmp:
            with step(shown, f"Evaluating on {data.n_test:,} test leads (metrics, charts)", timings):
                evaluation = evaluate(data, bundle, baselines, charts_dir=Path(tmp))
            with step(shown, "Logging to MLflow, registering, champion gate", timings):
                result = register(settings, data, bundle, evaluation, baselines)
    timings["total"] = time.perf_counter() - started
    result.seconds = timings
    return result


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()

"""`samepage train` as separate steps a notebook can call one by one.

    data = prepare(settings, defs)                       # labels, point-in-time features, split
    bundle = fit_candidate(data, {"num_leaves": 15})     # LightGBM + Platt
    ev = evaluate(data, bundle)                          # metrics, baselines, threshold, charts
    compare_with_champion(settings, data, bundle)        # same test rows, side by side
    result = register(settings, data, bundle, ev)        # MLflow run, version, champion gate

`train(settings, defs)` runs them all. The training set always comes through the feature store
(`features.store.training_frame`) and the stage history through `features.records`, so sales
feedback recorded through the API is in the next training set.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from features.bundle import ModelBundle
from features.definitions import Definitions, load_definitions
from features.settings import Settings
from features.store import training_frame
from features.tables import read_tables
from training import baselines as bl
from training import evaluate as ev_mod
from training import registry
from training.labels import LabelSet, as_of_times, build_labels, data_horizon
from training.models import LightGBMParams, fit_lightgbm
from training.split import Split, has_real_timestamps, split_labels
from training.threshold import ThresholdAdvice, capacity_threshold, weekly_volume

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


class TrainingError(ValueError):
    """The workspace is not ready to train (no features yet, no closed outcomes); says what to run."""


# -- data -----------------------------------------------------------------------------------
@dataclass
class TrainingData:
    """Labelled rows with their point-in-time features and the split, in one frame.

    `frame`: lead_id, as_of, every feature key, label, disqualified_reason, part
    (train/calibration/test). Same rows for every model compared on it.
    """

    defs: Definitions
    frame: pd.DataFrame
    split: Split
    labels: LabelSet
    horizon: pd.Timestamp | None
    weekly_leads: float
    volume_basis: str
    feature_service: str
    seed: int = 42
    timings: dict[str, float] = field(default_factory=dict)

    def rows(self, *parts: str) -> tuple[pd.DataFrame, np.ndarray]:
        """Feature columns and labels of the given parts, e.g. `rows("train", "calibration")`."""
        mask = self.frame["part"].isin(parts).to_numpy()
        chosen = self.frame.loc[mask]
        return chosen[self.defs.feature_keys], chosen["label"].to_numpy(dtype=int)

    @property
    def n_train(self) -> int:
        """Rows of the train period (trees + calibration slice)."""
        return int(self.frame["part"].isin(["train", "calibration"]).sum())

    @property
    def n_test(self) -> int:
        return int((self.frame["part"] == "test").sum())

    @property
    def data_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        return self.frame["as_of"].min(), self.frame["as_of"].max()


@dataclass
class Outcomes:
    """The labels plus what decided them: the horizon, whether times are real, every lead's as-of."""

    labels: LabelSet
    horizon: pd.Timestamp | None
    timed: bool
    as_of: pd.Series


def load_labels(settings: Settings, defs: Definitions, now: pd.Timestamp | str | None = None) -> Outcomes:
    """Labels from the workspace's stage history plus the feedback sales recorded through the API.

    `now` (default: the data's horizon) decides which windows are closed; without real
    timestamps every recorded outcome is final.
    """
    from features.records import stage_history

    tables = read_tables(settings.data_dir)
    stages = stage_history(settings, tables.stages)
    as_of = as_of_times(defs, tables.leads, stages)
    timed = has_real_timestamps(as_of)
    horizon = pd.Timestamp(now) if now is not None else (data_horizon(tables.leads, stages, tables.events) if timed else None)
    if horizon is not None and horizon.tzinfo is None:
        horizon = horizon.tz_localize("UTC")
    label_set = build_labels(defs, tables.leads, stages, now=horizon, outcomes_final=not timed)
    return Outcomes(label_set, horizon, timed, as_of)


def prepare(
    settings: Settings,
    defs: Definitions,
    now: pd.Timestamp | str | None = None,
    test_fraction: float = 0.2,
    calibration_fraction: float = 0.15,
    seed: int = 42,
    weekly_leads: float | None = None,
    feature_service: str | None = None,
    progress: Progress | None = None,
) -> TrainingData:
    """Labels from the stage history, features from Feast as of each label's time, the split.

    `now` (default: the data's horizon) decides which label windows are closed. Data without
    real timestamps (every lead at one as-of time) has final outcomes and a stratified split.
    `feature_service` defaults to `sql_likelihood_v<next version>`, applied to the Feast repo.
    """
    from features.feast_repo import apply_feature_service

    timings: dict[str, float] = {}
    with _step(progress, "Reading leads and the stage history (with sales feedback)", timings):
        outcomes = load_labels(settings, defs, now)
        label_set, horizon = outcomes.labels, outcomes.horizon
        if label_set.labels.empty:
            raise TrainingError(
                f"no lead has a closed label window ({label_set.n_open_window} still open at {horizon}): "
                f"training needs outcomes at least {defs.label.window_days} days old"
            )
        volume, basis = weekly_volume(outcomes.as_of, horizon if outcomes.timed else None)
        if weekly_leads is not None:
            volume, basis = float(weekly_leads), "given by the caller"
    with _step(progress, "Registering the feature service (feast apply)", timings):
        if feature_service is None:
            feature_service = f"{registry.MODEL_NAME}_v{registry.next_version(registry.client_for(settings))}"
        try:
            apply_feature_service(settings, defs, feature_service)
        except RuntimeError as exc:  # no views applied yet, or views of other definitions
            raise TrainingError(f"cannot read training features: {exc}") from None
    labels = label_set.labels
    split = split_labels(labels, test_fraction, calibration_fraction, seed=seed)  # fail before Feast
    with _step(progress, f"Point-in-time features for {len(labels):,} leads (Feast)", timings):
        features = training_frame(settings, defs, labels[["lead_id", "as_of"]], feature_service=feature_service)
    frame = features.copy()
    for column in ("label", "disqualified_reason", "reached_stage"):
        frame[column] = labels[column].to_numpy()
    frame["part"] = split.part.to_numpy()
    return TrainingData(defs, frame, split, label_set, horizon, volume, basis, feature_service, seed, timings)


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
    from features.bundle import BundlePyfunc

    defs = data.defs
    client = registry.client_for(settings)
    with tempfile.TemporaryDirectory(prefix="samepage-train-") as tmp:
        out = Path(tmp)
        baselines = baselines or fit_baselines(data)
        evaluation = evaluate(data, bundle, baselines, charts_dir=out / "charts") if evaluation is None or not evaluation.charts else evaluation
        X_test, y_test = data.rows("test")
        gate = registry.decide_promotion(client, defs, evaluation.metrics["test_roc_auc"], X_test, y_test)
        registry.describe_registered_model(client)
        tags = _run_tags(data, bundle, gate.reason)
        experiment = client.get_experiment_by_name(registry.EXPERIMENT)
        run_name = f"{registry.MODEL_NAME} {defs.version_string} {data.split.kind}"
        with mlflow_run(experiment.experiment_id, run_name, tags) as run:
            import mlflow

            mlflow.log_params(_run_params(data, bundle, params))
            mlflow.log_metrics(evaluation.metrics)
            if gate.champion_roc_auc is not None:
                mlflow.log_metric("champion_test_roc_auc", gate.champion_roc_auc)
            _write_tables(out / "tables", data, evaluation, baselines)
            mlflow.log_artifacts(str(out / "tables"), "evaluation")
            for chart in evaluation.charts.values():
                mlflow.log_artifact(str(chart), "charts")
            mlflow.log_artifact(str(_definitions_file(settings, defs, out)), "definitions")
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


@contextmanager
def mlflow_run(experiment_id: str, run_name: str, tags: dict[str, str]) -> Iterator[Any]:
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        yield run


def _run_tags(data: TrainingData, bundle: ModelBundle, promotion: str) -> dict[str, str]:
    d_from, d_to = data.data_range
    return {
        "definitions_version": data.defs.version_string,
        "fingerprint": data.defs.fingerprint,
        "feature_service": data.feature_service,
        "trained_at": str(bundle.meta.get("trained_at", _now_iso())),
        "data_from": d_from.isoformat(),
        "data_to": d_to.isoformat(),
        "split": data.split.kind,
        "promotion": promotion,
    }


def _run_params(data: TrainingData, bundle: ModelBundle, extra: dict[str, Any] | None) -> dict[str, Any]:
    defs = data.defs
    counts = data.split.counts
    params: dict[str, Any] = {f"lgbm_{k}": v for k, v in bundle.meta.get("params", {}).items()}
    params.update(
        {
            "trees": bundle.meta.get("best_iteration"),
            "label_target_stage": defs.label.target_stage,
            "label_window_days": defs.label.window_days,
            "label_as_of_stage": defs.label.as_of_stage,
            "label_horizon": data.labels.summary["label_horizon"],
            "split": data.split.kind,
            "test_from": data.split.test_from.isoformat() if data.split.test_from is not None else "(stratified)",
            "n_fit": counts["train"],
            "n_calibration": counts["calibration"],
            "n_test": counts["test"],
            "n_open_window_left_out": data.labels.n_open_window,
            "n_features": len(defs.feature_keys),
            "feature_service": data.feature_service,
            "calibration": "platt (held-out slice of the train period)",
            "weekly_leads_basis": data.volume_basis,
            "capacity_mqls_per_week": defs.sla.capacity.mqls_per_week,
            "current_mql_threshold": defs.mql.threshold,
        }
    )
    params.update(extra or {})
    return params


def _write_tables(directory: Path, data: TrainingData, evaluation: Evaluation, baselines: Baselines) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    evaluation.importance.to_csv(directory / "feature_importance.csv", index=False)
    evaluation.gains.to_csv(directory / "gains_by_decile.csv", index=False)
    (directory / "threshold.json").write_text(json.dumps(_threshold_json(evaluation.threshold), indent=2))
    (directory / "baseline_points_rules.json").write_text(json.dumps(baselines.points_rules, indent=2))
    (directory / "labels_summary.json").write_text(json.dumps(data.labels.summary, indent=2, default=str))
    reasons = data.labels.labels.loc[data.labels.labels["disqualified"]]
    table = reasons.groupby(reasons["disqualified_reason"].fillna("(none)")).size().rename("leads")
    table.sort_values(ascending=False).to_csv(directory / "disqualification_reasons.csv")


def _threshold_json(advice: ThresholdAdvice) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(advice)


def _definitions_file(settings: Settings, defs: Definitions, out: Path) -> Path:
    """The signed-off file itself when it is what was loaded; else the loaded content as YAML."""
    path = Path(settings.definitions)
    try:
        if load_definitions(path).version_string == defs.version_string:
            return path
    except ValueError:
        pass
    dumped = out / "definitions.yaml"
    dumped.write_text(yaml.safe_dump(defs.model_dump(mode="json", by_alias=True), sort_keys=False))
    return dumped


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
        with _step(shown, f"Training LightGBM on {data.split.counts['train']:,} leads ({data.split.kind} split)", timings):
            bundle = fit_candidate(data, params)
        with _step(shown, "Fitting the baselines (points rules, logistic regression)", timings):
            baselines = fit_baselines(data)
        with tempfile.TemporaryDirectory(prefix="samepage-charts-") as tmp:
            with _step(shown, f"Evaluating on {data.n_test:,} test leads (metrics, charts)", timings):
                evaluation = evaluate(data, bundle, baselines, charts_dir=Path(tmp))
            with _step(shown, "Logging to MLflow, registering, champion gate", timings):
                result = register(settings, data, bundle, evaluation, baselines)
    timings["total"] = time.perf_counter() - started
    result.seconds = timings
    return result


@contextmanager
def _step(progress: Progress | None, description: str, timings: dict[str, float]) -> Iterator[None]:
    task = progress.add_task(description, total=1) if progress is not None else None
    started = time.perf_counter()
    yield
    timings[description] = time.perf_counter() - started
    if progress is not None and task is not None:
        progress.update(task, completed=1, description=f"{description} [green]done[/]")


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()

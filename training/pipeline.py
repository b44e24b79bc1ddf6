"""`samepage train` as separate steps a notebook can call one by one.

    data = prepare(settings, defs)                       # labels, point-in-time features, split kind
    trial = run_trial(data)                              # backtest of every candidate, choice, drift
    bundle = fit_final(data, trial)                      # the winner (any kind) on every row
    ev = evaluate_trial(data, bundle, trial)             # test_* = the last backtest fold's leads, threshold, charts
    result = register(settings, data, bundle, ev, trial=trial)  # MLflow run, version, floor + champion gate

`train(settings, defs)` runs them all. The one-split steps (`fit_candidate`, `evaluate`,
`compare_with_champion`, `register` without a trial) remain for notebooks; the quality floor then
looks at the test rows instead of the backtest. The training set always comes through the feature store
(`features.store.training_frame`) and the stage history through `samepage.records`, so sales
feedback recorded through the API is in the next training set.

Rows are snapshots (a lead at its entry and at later as-of times), leads are leads: models learn
from every snapshot, while the headline figures (backtest AUC and interval, the floor, `test_*`,
the capacity threshold) judge each lead once, on its entry row. Across snapshots age alone
predicts the label, so all-snapshot figures would flatter any model; they are reported beside
(`backtest_roc_auc_all_snapshots`). In `train --json`, `n_train` counts rows (snapshots) the
registered model learned from and `n_test` counts the test leads (entry rows): the newest slice
on time, every lead's out-of-fold score when the data has no timestamps (no fold is newer).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from samepage.bundle import Bundle, ModelBundle
from samepage.criteria import criteria_met
from samepage.definitions import Definitions
from samepage.holdout import ARTIFACT_DIR, write_holdout
from samepage.locks import workspace_lock
from samepage.progress import step
from samepage.settings import Settings
from training import baselines as bl
from training import evaluate as ev_mod
from training import registry, selection, tracking
from training.backtest import auc_interval, describe, lead_codes
from training.data import Outcomes, TrainingData, TrainingError, load_labels, prepare
from training.models import LightGBMParams, fit_lightgbm, search_params
from training.threshold import ThresholdAdvice, capacity_threshold
from training.trial import HOLDOUT_NOTE, Trial, fit_final, lead_counts, run_trial, verdict, winner_problem, won_the_backtest

__all__ = [
    "Baselines", "Evaluation", "Outcomes", "TrainResult", "TrainingData", "TrainingError",
    "Trial", "compare_with_champion", "evaluate", "evaluate_trial", "fit_baselines", "fit_candidate", "fit_final",
    "load_labels", "prepare", "register", "run_trial", "train",
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
PREPARE_OPTIONS = {"now", "test_fraction", "calibration_fraction", "seed", "weekly_leads", "feature_service", "snapshot_days"}
TRIAL_OPTIONS = {"n_folds", "n_boot", "kind"}
GATE_OPTIONS = {"quality_floor"}
LOCK_NAME = "train"  # `<workspace>/.train.lock`: one training at a time per workspace


# -- models ---------------------------------------------------------------------------------
def fit_candidate(data: TrainingData, params: LightGBMParams | dict[str, Any] | None = None) -> ModelBundle:
    """LightGBM on the train part, early stopping and Platt scaling on the calibration slice."""
    if not isinstance(params, LightGBMParams):
        given = dict(params or {})
        given.setdefault("seed", data.seed)
        params = LightGBMParams(**given)
    X, y = data.rows("train")
    X_cal, y_cal = data.rows("calibration")
    return fit_lightgbm(data.defs, X, y, X_cal, y_cal, params, bundle_meta(data))


def bundle_meta(data: TrainingData) -> dict[str, Any]:
    """What every bundle says about where it comes from (serving reads it)."""
    d_from, d_to = data.data_range
    return {
        "definitions_version": data.defs.version_string,
        "fingerprint": data.defs.fingerprint,
        "feature_service": data.feature_service,
        "trained_at": _now_iso(),
        "data_from": d_from.isoformat(),
        "data_to": d_to.isoformat(),
        "split": data.split.kind,
        "feature_labels": data.defs.feature_labels,
    }


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
    out_of_time: pd.DataFrame | None = None  # lead_id, as_of, score, label, features: the run's `out_of_time/` artifact


def evaluate(
    data: TrainingData, bundle: Bundle, baselines: Baselines | None = None, charts_dir: Path | None = None
) -> Evaluation:
    """Candidate and baselines on the one-split test leads (entry rows); charts when `charts_dir` is given."""
    baselines = baselines or fit_baselines(data)
    X_test, y_test = data.rows("test", entry_only=True)
    test_rows = data.frame.loc[X_test.index]
    scores = {
        "LightGBM (calibrated)": bundle.predict_proba(X_test),
        "Points rules": bl.points_score(data.defs, X_test),
        "Logistic regression": bl.logreg_proba(data.defs, baselines.logreg, X_test),
    }
    X_train, y_train = data.rows("train")
    train_auc = ev_mod.score_metrics(y_train, bundle.predict_proba(X_train))["roc_auc"]
    return _evaluation(data, bundle, test_rows, y_test, scores, train_auc, charts_dir)


def evaluate_trial(data: TrainingData, bundle: Bundle, trial: Trial, charts_dir: Path | None = None) -> Evaluation:
    """`test_*` and baselines on the trial's test leads (entry rows), each scored by the fold model that
    did not learn from them; the capacity threshold is read off the same leads."""
    rows = data.frame.iloc[trial.holdout]
    X = data.frame[data.defs.feature_keys]
    y = data.frame["label"].to_numpy(dtype=int)
    train_auc = ev_mod.score_metrics(y, bundle.predict_proba(X))["roc_auc"]
    scores = trial.holdout_scores()
    return _evaluation(data, bundle, rows, y[trial.holdout], scores, train_auc, charts_dir, trial.score_name)


def _evaluation(
    data: TrainingData,
    bundle: Bundle,
    test_rows: pd.DataFrame,
    y_test: np.ndarray,
    scores: dict[str, np.ndarray],
    train_auc: float,
    charts_dir: Path | None,
    model_key: str = "LightGBM (calibrated)",
) -> Evaluation:
    p = scores[model_key]
    X_test = test_rows[data.defs.feature_keys]
    metrics = {f"test_{k}": v for k, v in ev_mod.score_metrics(y_test, p).items()}
    metrics.update({f"baseline_points_{k}": v for k, v in ev_mod.ranking_metrics(y_test, scores["Points rules"]).items()})
    metrics.update({f"baseline_logreg_{k}": v for k, v in ev_mod.score_metrics(y_test, scores["Logistic regression"]).items()})
    metrics["train_roc_auc"] = train_auc
    metrics["test_positive_rate"] = float(y_test.mean())
    eligible = criteria_met(data.defs, test_rows)
    advice = capacity_threshold(data.defs, y_test, p, data.weekly_leads, data.volume_basis, eligible)
    metrics.update(advice.metrics())
    importance = ev_mod.importance_summary(data.defs, bundle, X_test)
    gains = ev_mod.gains_table(y_test, p)
    result = Evaluation(metrics, scores, advice, importance, gains, out_of_time=out_of_time_frame(data, test_rows, y_test, p))
    if charts_dir is not None:
        short = data.defs.label.target_stage.upper()
        probabilities = {k: v for k, v in scores.items() if k != "Points rules" or k == model_key}
        result.charts = {
            "reliability": ev_mod.reliability_chart(y_test, probabilities, short, charts_dir / "reliability.png"),
            "lift": ev_mod.lift_chart(y_test, scores, short, charts_dir / "lift.png"),
            "gain": ev_mod.gain_chart(y_test, scores, short, charts_dir / "gain.png"),
            "roc": ev_mod.roc_chart(y_test, scores, charts_dir / "roc.png"),
            "importance": ev_mod.importance_chart(importance, charts_dir / "feature_importance.png"),
        }
    return result


def out_of_time_frame(data: TrainingData, test_rows: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """The test leads as the threshold saw them: lead_id, as_of, score, label, then every feature
    (what MQL criteria read), kept with the run so the definitions preview recomputes the same figures."""
    head = pd.DataFrame(
        {
            "lead_id": test_rows["lead_id"].astype(str).to_numpy(),
            "as_of": pd.to_datetime(test_rows["as_of"], utc=True).array,
            "score": np.asarray(p, dtype=float),
            "label": np.asarray(y, dtype=int),
        }
    )
    features = test_rows[[k for k in data.defs.feature_keys if k not in head.columns]].reset_index(drop=True)
    return pd.concat([head, features], axis=1)


def compare_with_champion(settings: Settings, data: TrainingData, bundle: Bundle) -> pd.DataFrame:
    """Candidate and current champion scored on the same test leads (entry rows; what the gate compares).

    One row per model with the test metrics; no champion → only the candidate's row.
    """
    client = registry.client_for(settings)
    X_test, y_test = data.rows("test", entry_only=True)
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
    backtest: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    chosen: str = ""
    ages: dict[str, Any] | None = None
    training_ages: dict[str, Any] | None = None  # `TrainingData.age_summary()`: rows, leads, ages covered
    ages_described: str = ""  # `TrainingData.describe_ages()`, for people

    def as_json(self) -> dict[str, Any]:
        """The contract's `samepage train --json` object, plus `training_ages`.

        `n_train`: rows (snapshots) the registered model learned from; `n_test`: leads of the newest
        slice (one entry row each) that `metrics.test_*` and the threshold are computed on.
        """
        return {
            "run_id": self.run_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "promoted": self.promoted,
            "promotion_reason": self.promotion_reason,
            "definitions_version": self.definitions_version,
            "split": self.split,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "metrics": {k: float(self.metrics[k]) for k in CONTRACT_METRICS},
            "threshold": {
                "value": self.threshold.capacity.value,
                "expected_mql_per_week": self.threshold.capacity.expected_mql_per_week,
                "expected_sql_rate": self.threshold.capacity.expected_sql_rate,
            },
            "backtest": self.backtest,
            "drift": self.drift,
            "training_ages": self.training_ages,
        }


def holdout_evidence(data: TrainingData, bundle: Bundle, evaluation: Evaluation) -> selection.Evidence:
    """The floor's evidence without a backtest: the one-split test leads (entry rows), bootstrap over leads."""
    X_test, y_test = data.rows("test", entry_only=True)
    test = data.frame.loc[(data.frame["part"] == "test") & (data.frame["snapshot_day"] == 0)]
    lo, _ = auc_interval(y_test, bundle.predict_proba(X_test), lead_codes(test), seed=data.seed)
    n_leads, n_positive = lead_counts(data.frame)
    m = evaluation.metrics
    return selection.Evidence(
        "lightgbm", m["test_roc_auc"], lo, m["baseline_points_roc_auc"], m["baseline_logreg_roc_auc"],
        n_leads, n_positive, "test-row",
    )  # fmt: skip


def register(
    settings: Settings,
    data: TrainingData,
    bundle: Bundle,
    evaluation: Evaluation | None = None,
    baselines: Baselines | None = None,
    params: dict[str, Any] | None = None,
    trial: Trial | None = None,
    quality_floor: bool = True,
) -> TrainResult:
    """One MLflow run: params, metrics, backtest, drift, charts, the definitions file, the pyfunc;
    register the version, tag it, and move `champion` only when the quality floor holds, the
    backtest winner is a kind that can serve, and the champion gate says so."""
    from samepage.bundle import BundlePyfunc

    defs = data.defs
    client = registry.client_for(settings)
    with tempfile.TemporaryDirectory(prefix="samepage-train-") as tmp:
        out = Path(tmp)
        if trial is None:
            baselines = baselines or fit_baselines(data)
            if evaluation is None or not evaluation.charts:
                evaluation = evaluate(data, bundle, baselines, charts_dir=out / "charts")
            X_test, y_test = data.rows("test", entry_only=True)
            evidence = holdout_evidence(data, bundle, evaluation)
        else:
            if evaluation is None or not evaluation.charts:
                evaluation = evaluate_trial(data, bundle, trial, charts_dir=out / "charts")
            X_test = data.frame.iloc[trial.holdout][defs.feature_keys]
            y_test = data.frame["label"].to_numpy(dtype=int)[trial.holdout]
            n_leads, n_positive = lead_counts(data.frame)
            evidence = selection.evidence(trial.backtest, trial.registered, n_leads, n_positive)
        candidate_auc = evaluation.metrics["test_roc_auc"]
        if trial is not None and registry.champion_has_seen(client, trial.backtest.last.test_from):
            # Both have learned from the newest slice: compare the refit, not the fold model.
            candidate_auc = ev_mod.score_metrics(y_test, bundle.predict_proba(X_test))["roc_auc"]
        champion_gate = registry.decide_promotion(client, defs, candidate_auc, X_test, y_test)
        winner = winner_problem(trial) if trial is not None else None
        won = won_the_backtest(trial) if trial is not None else ""
        promote, reason = verdict(evidence, champion_gate, winner, enforce_floor=quality_floor, won=won)
        registry.describe_registered_model(client)
        tags = tracking.run_tags(data, bundle, reason)
        n_train, n_test = len(data.frame) if trial is not None else data.n_train, len(y_test)  # rows; leads
        if trial is not None:
            tags.update(test_rows=HOLDOUT_NOTE, selected=describe(trial.backtest.candidates[trial.choice.winner]))
            params = {**tracking.trial_params(trial, n_train), **(params or {})}
        experiment = client.get_experiment_by_name(registry.EXPERIMENT)
        assert experiment is not None, "client_for creates the experiment"
        run_name = f"{registry.MODEL_NAME} {defs.version_string} {data.split.kind}"
        with tracking.mlflow_run(experiment.experiment_id, run_name, tags) as run:
            import mlflow

            mlflow.log_params(tracking.run_params(data, bundle, params))
            mlflow.log_metrics(evaluation.metrics)
            if champion_gate.champion_roc_auc is not None:
                mlflow.log_metric("champion_test_roc_auc", champion_gate.champion_roc_auc)
            points_rules = baselines.points_rules if baselines is not None else bl.points_rules(defs)
            tracking.write_evaluation_tables(
                out / "tables", data, evaluation.importance, evaluation.gains, evaluation.threshold, points_rules
            )
            if trial is not None:
                tracking.log_trial(trial, out / "trial")
            mlflow.log_artifacts(str(out / "tables"), "evaluation")
            if evaluation.out_of_time is not None:
                note = _out_of_time_note(trial)
                folder = write_holdout(out / ARTIFACT_DIR, evaluation.out_of_time, data.weekly_leads, data.volume_basis, note)
                mlflow.log_artifacts(str(folder), ARTIFACT_DIR)
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
            if promote:
                registry.promote(client, version)
            mlflow.set_tag("model_version", version)
            run_id = run.info.run_id
    return TrainResult(
        run_id=run_id,
        model_name=registry.MODEL_NAME,
        model_version=version,
        promoted=promote,
        promotion_reason=reason,
        definitions_version=defs.version_string,
        n_train=n_train,
        n_test=n_test,
        split=data.split.kind,
        metrics=evaluation.metrics,
        threshold=evaluation.threshold,
        backtest=trial.backtest.summary(trial.registered) if trial is not None else None,
        drift=trial.drift if trial is not None else None,
        chosen=trial.choice.reason if trial is not None else "",
        ages=training_ages(data),
        training_ages=data.age_summary(),
        ages_described=data.describe_ages(),
    )


def _out_of_time_note(trial: Trial | None) -> str:
    """How the stored out-of-time scores came about, in a few words."""
    if trial is None:
        return "the one-split test leads, scored by the candidate fit on the leads before them"
    bt = trial.backtest
    if bt.kind == "time" and bt.last.test_from is not None:
        return f"leads from {bt.last.test_from:%Y-%m-%d} on, scored by the backtest model fit on the leads before them"
    return "no timestamps: every lead's out-of-fold score from the backtest"


def training_ages(data: TrainingData) -> dict[str, Any] | None:
    """How old the leads were at their as-of times (the `age` feature), when the definitions have one."""
    keys = [f.key for f in data.defs.features if f.kind == "age"]
    if not keys or keys[0] not in data.frame.columns:
        return None
    days = pd.to_numeric(data.frame[keys[0]].astype("object"), errors="coerce").dropna()
    if days.empty:
        return None
    q = days.quantile([0.0, 0.25, 0.5, 0.75, 1.0]).to_list()
    return {"feature": keys[0], "rows": int(len(days)), "min": q[0], "p25": q[1], "median": q[2], "p75": q[3], "max": q[4]}


# -- the whole job --------------------------------------------------------------------------
def train(
    settings: Settings, defs: Definitions, progress: bool = True, lock_wait_seconds: float = 600.0, **overrides: Any
) -> TrainResult:
    """prepare → backtest (points, logistic regression, LightGBM settings) → choose → refit the winner
    on every row → evaluate the newest slice → register (the `samepage train` command).

    Runs under the workspace's `train` lock (`samepage.locks.workspace_lock`): two trainings at once
    would name the same feature service and the later promotion would win. A second one waits up
    to `lock_wait_seconds`, then raises `samepage.locks.WorkspaceBusy`.

    `overrides`: any `prepare` option (now, test_fraction, calibration_fraction, seed, weekly_leads,
    feature_service, snapshot_days), `n_folds`/`n_boot` of the backtest, a LightGBM hyper-parameter
    (see `LightGBMParams`), which then holds for every setting of the search, or `quality_floor=False`
    (promote on the champion gate alone; for fixtures that need a champion on tiny data), with
    `kind="lightgbm"` (or logreg, points) when a fixture needs that kind registered whatever wins.
    """
    unknown = set(overrides) - PREPARE_OPTIONS - TRIAL_OPTIONS - GATE_OPTIONS - set(LightGBMParams.model_fields)
    if unknown:
        raise TypeError(f"train: unknown options {sorted(unknown)}")
    prep = {k: v for k, v in overrides.items() if k in PREPARE_OPTIONS}
    trial_options = {k: v for k, v in overrides.items() if k in TRIAL_OPTIONS}
    grid = search_params({k: v for k, v in overrides.items() if k in LightGBMParams.model_fields}, seed=prep.get("seed", 42))
    columns = [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
    started = time.perf_counter()
    with (
        workspace_lock(settings, LOCK_NAME, wait_seconds=lock_wait_seconds),
        Progress(*columns, console=Console(stderr=True), disable=not progress, transient=False) as bar,
    ):
        shown = bar if progress else None
        data = prepare(settings, defs, progress=shown, **prep)
        timings = dict(data.timings)
        n_leads, n_rows = data.n_leads(), len(data.frame)
        candidates = f"points rules, logistic regression, {len(grid)} LightGBM settings"
        with step(shown, f"Backtest on {n_leads:,} leads ({n_rows:,} snapshot rows): {candidates}", timings):
            trial = run_trial(data, grid, **trial_options)
        kind = describe(trial.backtest.candidates[trial.registered])
        with step(shown, f"Refitting the winner, {kind}, on all {n_rows:,} labelled rows of {n_leads:,} leads", timings):
            bundle = fit_final(data, trial, bundle_meta(data))
        with tempfile.TemporaryDirectory(prefix="samepage-charts-") as tmp:
            with step(shown, f"Evaluating on the newest {len(trial.holdout):,} leads (metrics, threshold, charts)", timings):
                evaluation = evaluate_trial(data, bundle, trial, charts_dir=Path(tmp))
            with step(shown, "Logging to MLflow, registering, quality floor and champion gate", timings):
                floor = bool(overrides.get("quality_floor", True))
                result = register(settings, data, bundle, evaluation, trial=trial, quality_floor=floor)
    timings["total"] = time.perf_counter() - started
    result.seconds = timings
    return result


def _now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()

"""What one training run records in MLflow besides metrics: tags, params, tables, definitions.

Tags are the ones serving and people filter on (definitions version, fingerprint, feature
service, data range, split, promotion); the tables are small CSV/JSON files a person can open
from the run page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from samepage.bundle import Bundle
from samepage.definitions import Definitions, load_definitions
from samepage.settings import Settings
from training.threshold import ThresholdAdvice

if TYPE_CHECKING:
    from training.data import TrainingData
    from training.trial import Trial


@contextmanager
def mlflow_run(experiment_id: str, run_name: str, tags: dict[str, str]) -> Iterator[Any]:
    import mlflow  # heavy; only where a run is written

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        yield run


def run_tags(data: TrainingData, bundle: Bundle, promotion: str) -> dict[str, str]:
    d_from, d_to = data.data_range
    return {
        "definitions_version": data.defs.version_string,
        "fingerprint": data.defs.fingerprint,
        "feature_service": data.feature_service,
        "trained_at": str(bundle.meta.get("trained_at") or datetime.now(UTC).replace(microsecond=0).isoformat()),
        "data_from": d_from.isoformat(),
        "data_to": d_to.isoformat(),
        "split": data.split.kind,
        "promotion": promotion,
    }


def run_params(data: TrainingData, bundle: Bundle, extra: dict[str, Any] | None) -> dict[str, Any]:
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
            "model_kind": bundle.kind,
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


def write_evaluation_tables(
    directory: Path,
    data: TrainingData,
    importance: pd.DataFrame,
    gains: pd.DataFrame,
    threshold: ThresholdAdvice,
    points_rules: list[dict[str, Any]],
) -> None:
    """Feature importance, gains by decile, threshold advice, the points rules, label summary and
    disqualification reasons (kept for reporting), as files for the run's `evaluation/` folder."""
    directory.mkdir(parents=True, exist_ok=True)
    importance.to_csv(directory / "feature_importance.csv", index=False)
    gains.to_csv(directory / "gains_by_decile.csv", index=False)
    (directory / "threshold.json").write_text(json.dumps(asdict(threshold), indent=2))
    (directory / "baseline_points_rules.json").write_text(json.dumps(points_rules, indent=2))
    (directory / "labels_summary.json").write_text(json.dumps(data.labels.summary, indent=2, default=str))
    labels = data.labels.labels
    reasons = labels.loc[labels["disqualified"]]
    table = reasons.groupby(reasons["disqualified_reason"].fillna("(none)")).size().rename("leads")
    table.sort_values(ascending=False).to_csv(directory / "disqualification_reasons.csv")


def definitions_artifact(settings: Settings, defs: Definitions, out: Path) -> Path:
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


def trial_params(trial: Trial, n_rows: int) -> dict[str, Any]:
    """Params that say how the registered model was chosen, fit and judged (override the split's)."""
    bt = trial.backtest
    run = bt.candidates[trial.registered]
    return {
        "n_fit": n_rows,
        "n_calibration": len(bt.y),
        "n_test": len(trial.holdout),  # leads: the newest slice's entry rows
        "n_test_rows_all_snapshots": int(len(bt.last.test)) if bt.kind == "time" else int(len(bt.pooled)),
        "backtest_judged_on": "entry rows (one per test lead); models learn from every snapshot",
        "test_from": bt.last.test_from.isoformat() if bt.last.test_from is not None else "(stratified: every fold)",
        "calibration": _calibration_note(trial),
        "backtest": "rolling origin on time" if bt.kind == "time" else "stratified k-fold",
        "backtest_folds": len(bt.folds),
        "backtest_bootstrap": bt.n_boot,
        "backtest_fold_trees": ",".join(str(t) for t in run.trees),
        "selected": trial.choice.winner,
        "registered": trial.registered,
    }


def log_trial(trial: Trial, directory: Path) -> None:
    """Backtest metrics (`backtest_*`), the per-fold table and chart, drift metrics, tags and JSON.

    Call inside the active MLflow run.
    """
    import mlflow

    from training.backtest import fold_chart

    bt = trial.backtest
    directory.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, float] = {}
    registered = bt.candidates[trial.registered]
    for key, value in registered.pooled.items():  # lead-level: entry rows
        metrics[f"backtest_{key}"] = value
    metrics["backtest_roc_auc_ci_lo"], metrics["backtest_roc_auc_ci_hi"] = registered.roc_auc_ci
    metrics["backtest_roc_auc_all_snapshots"] = registered.roc_auc_all_snapshots
    for run in bt.candidates.values():
        metrics[f"backtest_{run.name}_roc_auc"] = run.roc_auc
        metrics[f"backtest_{run.name}_roc_auc_ci_lo"] = run.roc_auc_ci[0]
        metrics[f"backtest_{run.name}_roc_auc_all_snapshots"] = run.roc_auc_all_snapshots
    drift = trial.drift
    metrics["drift_base_rate_train"] = drift["base_rate"]["train"]
    metrics["drift_base_rate_recent"] = drift["base_rate"]["recent"]
    for row in drift["features"]:
        metrics[f"drift_psi_{row['feature']}"] = row["psi"]
        metrics[f"drift_out_of_range_{row['feature']}"] = row["out_of_range_share"]
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
    for fold, fold_metrics in zip(bt.folds, registered.folds, strict=True):
        mlflow.log_metric("backtest_fold_roc_auc", fold_metrics["roc_auc"], step=fold.number)
    bt.fold_table().to_csv(directory / "backtest_folds.csv", index=False)
    (directory / "backtest.json").write_text(json.dumps(bt.summary(trial.registered), indent=2, default=str))
    (directory / "selection.json").write_text(
        json.dumps({"winner": trial.choice.winner, "registered": trial.registered, "reason": trial.choice.reason}, indent=2)
    )
    (directory / "drift.json").write_text(json.dumps(drift, indent=2, default=str))
    mlflow.log_artifacts(str(directory), "backtest")
    mlflow.log_artifact(str(fold_chart(bt, directory / "charts" / "backtest_folds.png")), "charts")
    mlflow.set_tags(
        {
            "selection": trial.choice.reason[:5000],
            "drift_warnings": ("; ".join(drift["warnings"]) or "none")[:5000],
        }
    )


def _calibration_note(trial: Trial) -> str:
    kind = trial.choice.kind
    if kind == "lightgbm":
        return f"platt on out-of-fold margins of the backtest (cross-fitting): {trial.calibration.note}"
    if kind == "logreg":
        return "none needed: logistic regression fits probabilities directly (on every labelled row)"
    return "platt on the points total, fitted on every labelled row (the rules themselves are the team's)"

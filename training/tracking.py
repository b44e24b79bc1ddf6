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
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from samepage.bundle import ModelBundle
from samepage.definitions import Definitions, load_definitions
from samepage.settings import Settings
from training.threshold import ThresholdAdvice

if TYPE_CHECKING:
    from training.data import TrainingData


@contextmanager
def mlflow_run(experiment_id: str, run_name: str, tags: dict[str, str]) -> Iterator[Any]:
    import mlflow  # heavy; only where a run is written

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        yield run


def run_tags(data: TrainingData, bundle: ModelBundle, promotion: str) -> dict[str, str]:
    d_from, d_to = data.data_range
    return {
        "definitions_version": data.defs.version_string,
        "fingerprint": data.defs.fingerprint,
        "feature_service": data.feature_service,
        "trained_at": str(bundle.meta.get("trained_at") or datetime.now(timezone.utc).replace(microsecond=0).isoformat()),
        "data_from": d_from.isoformat(),
        "data_to": d_to.isoformat(),
        "split": data.split.kind,
        "promotion": promotion,
    }


def run_params(data: TrainingData, bundle: ModelBundle, extra: dict[str, Any] | None) -> dict[str, Any]:
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

"""MLflow: the experiment, the registered model `sql_likelihood`, and the champion gate.

Every model version carries the tags serving relies on (`definitions_version`, `fingerprint`,
`feature_service`, `trained_at`, `data_from`, `data_to`, `split`, `promotion`), the same tags
as its run. `decide_promotion` is the champion comparison: the candidate must beat the current
champion on the candidate's own test rows, unless no champion could still serve. It is one of
three conditions; the quality floor and the backtest winner's kind (`training.selection`,
`training.trial.verdict`) are the others, so a first model is no longer champion by default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import lightgbm
import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema, TensorSpec
from sklearn.metrics import roc_auc_score

from samepage.bundle import CHAMPION, MODEL_NAME, Bundle
from samepage.definitions import Definitions, Feature
from samepage.settings import Settings

EXPERIMENT = "samepage"
VERSION_TAGS = (
    "definitions_version", "fingerprint", "feature_service", "trained_at", "data_from", "data_to", "split", "promotion",
)  # fmt: skip


def client_for(settings: Settings) -> MlflowClient:
    """Point MLflow at the workspace's tracking store and make sure the experiment exists.

    The fluent API (`mlflow.start_run`, `log_model`) reads the process-wide URI, so it is set
    here from the settings passed in, never from a global default.
    """
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    # Our own progress display is the one people watch; MLflow's download bars only add noise.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:
        try:
            client.create_experiment(EXPERIMENT, artifact_location=settings.artifact_root)
        except MlflowException:
            if client.get_experiment_by_name(EXPERIMENT) is None:  # not a concurrent create
                raise
    return client


def next_version(client: MlflowClient, name: str = MODEL_NAME) -> int:
    """The number the registry will most likely give the next version (names its feature service)."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return 1
    return max((int(v.version) for v in versions), default=0) + 1


def champion_version(client: MlflowClient, name: str = MODEL_NAME) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def load_bundle(uri: str) -> Bundle:
    """The bundle inside a logged pyfunc (`models:/sql_likelihood@champion`, `runs:/...`), as serving loads it."""
    return mlflow.pyfunc.load_model(uri).unwrap_python_model().bundle


def model_signature(defs: Definitions) -> ModelSignature:
    """Raw feature columns in (categories as strings), calibrated `score` out."""
    def kind(f: Feature) -> str:
        if f.is_categorical:
            return "string"
        return "boolean" if f.kind == "attribute" and f.type == "boolean" else "double"

    # Every column is required (MLflow then names a missing one in a 400); values may be null.
    inputs: list[ColSpec | TensorSpec] = [ColSpec(kind(f), f.key, required=True) for f in defs.features]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double", "score")]))


def input_example(defs: Definitions, frame: pd.DataFrame, rows: int = 3) -> pd.DataFrame:
    """A few real rows typed as the signature says (strings, booleans, doubles; missing as None/NaN)."""
    example = frame[defs.feature_keys].head(rows).copy()
    for f in defs.features:
        col = example[f.key]
        if f.is_categorical:
            example[f.key] = col.astype("string").astype(object).where(col.notna(), None)
        elif f.kind == "attribute" and f.type == "boolean":
            example[f.key] = col.astype("object").where(col.notna(), None).map(lambda v: v if v is None else bool(v))
        else:
            example[f.key] = pd.to_numeric(col.astype("object"), errors="coerce").astype("float64")
    return example.reset_index(drop=True)


def pip_requirements() -> list[str]:
    """Pinned from the running environment; samepage itself must be installed where it is served."""
    return [
        f"mlflow=={mlflow.__version__}",
        f"lightgbm=={lightgbm.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
    ]


@dataclass
class Promotion:
    promote: bool
    reason: str
    champion_version: str | None = None
    champion_roc_auc: float | None = None


def decide_promotion(
    client: MlflowClient,
    defs: Definitions,
    candidate_roc_auc: float,
    test_frame: pd.DataFrame,
    y_test: np.ndarray,
    name: str = MODEL_NAME,
) -> Promotion:
    """The champion gate: score the current champion on the candidate's test rows and compare.

    Promote when there is no champion, when the champion was trained under other label/feature
    definitions (it cannot serve these anyway), or when the candidate's test ROC AUC is strictly
    higher. A tie keeps the champion: a change must earn its place.
    """
    current = champion_version(client, name)
    if current is None:
        return Promotion(True, f"no {CHAMPION} yet: the first model becomes {CHAMPION}")
    tags = current.tags or {}
    if tags.get("fingerprint") != defs.fingerprint:
        return Promotion(
            True,
            f"{CHAMPION} v{current.version} was trained under definitions fingerprint {tags.get('fingerprint')!r}, "
            f"not {defs.fingerprint!r}: it cannot serve these definitions, so the candidate replaces it",
            current.version,
        )
    champion = load_bundle(f"models:/{name}/{current.version}")
    champion_auc = float(roc_auc_score(y_test, champion.predict_proba(test_frame)))
    if candidate_roc_auc > champion_auc:
        return Promotion(
            True,
            f"test ROC AUC {candidate_roc_auc:.4f} beats {CHAMPION} v{current.version}'s {champion_auc:.4f} "
            f"on the same {len(y_test):,} test leads",
            current.version,
            champion_auc,
        )
    return Promotion(
        False,
        f"test ROC AUC {candidate_roc_auc:.4f} does not beat {CHAMPION} v{current.version}'s {champion_auc:.4f} "
        f"on the same {len(y_test):,} test leads; {CHAMPION} kept",
        current.version,
        champion_auc,
    )


def champion_has_seen(client: MlflowClient, newest_from: pd.Timestamp | None, name: str = MODEL_NAME) -> bool:
    """Whether the champion learned from rows at or after `newest_from` (None: no timestamps, assume so).

    A champion refit on every row has seen the newest slice, so it must be compared with the
    candidate's refit (which has too), not with a model fit before the slice.
    """
    current = champion_version(client, name)
    if current is None:
        return False
    data_to = (current.tags or {}).get("data_to")
    if newest_from is None or not data_to:
        return True
    return bool(pd.Timestamp(data_to) >= newest_from)


def set_version_tags(client: MlflowClient, version: str, tags: dict[str, str], name: str = MODEL_NAME) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def promote(client: MlflowClient, version: str, name: str = MODEL_NAME) -> None:
    client.set_registered_model_alias(name, CHAMPION, version)


def describe_registered_model(client: MlflowClient, name: str = MODEL_NAME) -> None:
    """Make sure the registered model exists with a description people can read in the UI."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            description=(
                "Probability that a lead reaches the definitions' label stage (SQL or later) within "
                "the label window; LightGBM on Feast features, Platt-calibrated. The alias "
                f"`{CHAMPION}` is what serving scores with."
            ),
        )

"""The champion's out-of-time predictions: written by training as an artifact of its MLflow run, read back here.

They are the test leads of the newest slice (one entry row each), scored by models that had not seen
them, with their outcome and every feature value (MQL criteria read features and attributes). The
definitions preview recomputes the expected MQLs a week from them with training's own threshold
function, and the report's calibration panel shows them until live scores have outcomes. A run is
immutable, so a read is cached by (tracking URI, run id).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from samepage.bundle import CHAMPION, MODEL_NAME
from samepage.settings import Settings

ARTIFACT_DIR = "out_of_time"
PREDICTIONS = "predictions.parquet"
META = "predictions.json"
COLUMNS = ("lead_id", "as_of", "score", "label")  # then every feature column
CACHE_SIZE = 8
_CACHE: dict[tuple[str, str], Holdout] = {}  # a run's artifacts never change


@dataclass(frozen=True)
class Holdout:
    """`frame`: lead_id, as_of, score (calibrated), label (0/1), then the features; `weekly_leads` and
    `volume_basis` as the run's threshold used them."""

    frame: pd.DataFrame
    weekly_leads: float
    volume_basis: str
    note: str
    run_id: str = ""
    model_version: str = ""
    fingerprint: str = ""

    @property
    def n(self) -> int:
        return len(self.frame)

    def describe(self) -> str:
        """Which predictions these are, in words (the preview and the report say it)."""
        who = f"champion v{self.model_version}" if self.model_version else f"run {self.run_id[:8]}"
        return (
            f"{who}'s out-of-time predictions from training: {self.n:,} test leads of the newest slice, "
            f"each scored by a model that had not seen it ({self.note})"
        )


def write_holdout(directory: Path, frame: pd.DataFrame, weekly_leads: float, volume_basis: str, note: str) -> Path:
    """The files of the run's `out_of_time/` folder; `frame` has `COLUMNS` first."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"out-of-time predictions need columns {missing}")
    directory.mkdir(parents=True, exist_ok=True)
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):  # parquet keeps the values, not the category set
            out[column] = out[column].astype("string")
    out.to_parquet(directory / PREDICTIONS, index=False)
    meta = {"weekly_leads": weekly_leads, "volume_basis": volume_basis, "note": note, "rows": len(out)}
    (directory / META).write_text(json.dumps(meta, indent=2))
    return directory


def load_holdout(tracking_uri: str, run_id: str) -> Holdout | None:
    """The out-of-time predictions a run logged, or None (a run from before they were kept, or none)."""
    key = (tracking_uri, run_id)
    if key not in _CACHE:
        found = _load(tracking_uri, run_id)
        if found is None:
            return None  # not remembered: a registry that did not answer may answer next time
        while len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = found
    return _CACHE[key]


def champion_holdout(settings: Settings) -> Holdout | None:
    """The current champion's out-of-time predictions (None: no champion, or it has none).

    Reads only: a workspace without a tracking database is not given one."""
    if settings.mlflow_tracking_uri is None and not (settings.home_dir / "mlflow.db").exists():
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    try:
        version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except MlflowException:
        return None
    if not version.run_id:
        return None
    found = load_holdout(settings.tracking_uri, version.run_id)
    if found is None:
        return None
    tags: dict[str, Any] = dict(version.tags or {})
    return Holdout(
        found.frame, found.weekly_leads, found.volume_basis, found.note, found.run_id, str(version.version),
        str(tags.get("fingerprint", "")),
    )  # fmt: skip


def _load(tracking_uri: str, run_id: str) -> Holdout | None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a page or a JSON line is no place for bars
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    with tempfile.TemporaryDirectory(prefix="samepage-holdout-") as tmp:
        try:
            folder = Path(client.download_artifacts(run_id, ARTIFACT_DIR, tmp))
        except (MlflowException, OSError):
            return None
        if not (folder / PREDICTIONS).exists() or not (folder / META).exists():
            return None
        frame = pd.read_parquet(folder / PREDICTIONS)
        meta = json.loads((folder / META).read_text())
    return Holdout(frame, float(meta["weekly_leads"]), str(meta["volume_basis"]), str(meta.get("note", "")), run_id)

"""The training set: labels from the closed loop, point-in-time features from Feast, the split.

`load_labels` reads the stage history through `samepage.records.stage_history`, so feedback
sales recorded through the API is in the next training set; `prepare` adds the features of
each (lead, as-of) row through `features.store.training_frame` and splits the rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rich.progress import Progress

from samepage.definitions import Definitions
from samepage.settings import Settings
from features.store import training_frame
from samepage.tables import read_tables
from training import registry
from training.labels import LabelSet, as_of_times, build_labels, data_horizon
from training.split import Split, has_real_timestamps, split_labels
from training.threshold import weekly_volume


class TrainingError(ValueError):
    """The workspace is not ready to train (no features yet, no closed outcomes); says what to run."""


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
    from samepage.records import stage_history

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
    with step(progress, "Reading leads and the stage history (with sales feedback)", timings):
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
    with step(progress, "Registering the feature service (feast apply)", timings):
        if feature_service is None:
            feature_service = f"{registry.MODEL_NAME}_v{registry.next_version(registry.client_for(settings))}"
        try:
            apply_feature_service(settings, defs, feature_service)
        except RuntimeError as exc:  # no views applied yet, or views of other definitions
            raise TrainingError(f"cannot read training features: {exc}") from None
    labels = label_set.labels
    split = split_labels(labels, test_fraction, calibration_fraction, seed=seed)  # fail before Feast
    with step(progress, f"Point-in-time features for {len(labels):,} leads (Feast)", timings):
        features = training_frame(settings, defs, labels[["lead_id", "as_of"]], feature_service=feature_service)
    frame = features.copy()
    for column in ("label", "disqualified_reason", "reached_stage"):
        frame[column] = labels[column].to_numpy()
    frame["part"] = split.part.to_numpy()
    return TrainingData(defs, frame, split, label_set, horizon, volume, basis, feature_service, seed, timings)


@contextmanager
def step(progress: Progress | None, description: str, timings: dict[str, float]) -> Iterator[None]:
    task = progress.add_task(description, total=1) if progress is not None else None
    started = time.perf_counter()
    yield
    timings[description] = time.perf_counter() - started
    if progress is not None and task is not None:
        progress.update(task, completed=1, description=f"{description} [green]done[/]")

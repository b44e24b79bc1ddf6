"""The training set: labels from the closed loop, point-in-time features from Feast, the split.

`load_labels` reads the stage history through `samepage.records.stage_history`, so feedback
sales recorded through the API is in the next training set; `prepare` adds the features of
each (lead, as-of) snapshot through `features.store.training_frame` and splits the rows by lead.
A lead contributes several snapshots (its entry and later looks, `training.labels`), so rows
are not leads: `TrainingData.describe_ages` says which ages the rows cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress

from features.store import training_frame
from samepage.data.live import workspace_tables
from samepage.definitions import Definitions
from samepage.inbox import Inbox
from samepage.progress import step
from samepage.settings import Settings
from training import registry
from training.labels import DEFAULT_SNAPSHOT_DAYS, LabelSet, as_of_times, build_labels, data_horizon
from training.split import Split, has_real_timestamps, split_labels
from training.threshold import weekly_volume

FRAME_LABEL_COLUMNS = ("label", "disqualified_reason", "reached_stage", "entry_as_of", "snapshot_day", "age_days")
AGE_EDGES = (1, 7, 30, 90, 180, 365)  # days: the age buckets `TrainingData.age_summary` counts


class TrainingError(ValueError):
    """The workspace is not ready to train (no features yet, no closed outcomes); says what to run."""


@dataclass
class TrainingData:
    """Labelled snapshots with their point-in-time features and the split, in one frame.

    `frame`: lead_id, as_of (the snapshot's time), every feature key, label,
    disqualified_reason, reached_stage, entry_as_of, snapshot_day (days after entry), age_days
    (days since creation at as_of), part (train/calibration/test; all snapshots of a lead share
    one). Same rows for every model compared on it; group folds by `lead_id`.
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
    freshness: str = ""  # what `prepare` did to bring the feature store up to date

    def rows(self, *parts: str, entry_only: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
        """Feature columns and labels of the given parts, e.g. `rows("train", "calibration")`.

        `entry_only` keeps each lead's entry snapshot only (one row per lead, as before snapshots).
        """
        mask = self.frame["part"].isin(parts).to_numpy()
        if entry_only:
            mask &= (self.frame["snapshot_day"] == 0).to_numpy()
        chosen = self.frame.loc[mask]
        return chosen[self.defs.feature_keys], chosen["label"].to_numpy(dtype=int)

    def n_leads(self, *parts: str) -> int:
        """Distinct leads in the given parts (all parts when none are named)."""
        return int(self._part_rows(parts)["lead_id"].nunique())

    def age_summary(self, *parts: str) -> dict[str, Any]:
        """Which ages the rows of the given parts (default: all) cover, for `train` output and MLflow.

        Ages are days since the lead was created at each snapshot's as-of time (what the age
        feature reads). JSON-ready: rows, leads, snapshot_days, min/median/max age, rows per age
        bucket and per snapshot day, and the label window for comparison.
        """
        rows = self._part_rows(parts)
        age = rows["age_days"].astype("float64")
        buckets = pd.cut(age, bins=[-np.inf, *AGE_EDGES, np.inf], labels=_bucket_names())
        return {
            "rows": len(rows),
            "leads": int(rows["lead_id"].nunique()),
            "snapshot_days": list(self.labels.snapshot_days),
            "label_window_days": self.defs.label.window_days,
            "age_days": {
                "min": _round(age.min()),
                "median": _round(age.median()),
                "max": _round(age.max()),
            },
            "rows_by_age": {str(k): int(v) for k, v in buckets.value_counts(sort=False).items()},
            "rows_by_snapshot_day": {str(k): int(v) for k, v in rows["snapshot_day"].value_counts().sort_index().items()},
        }

    def describe_ages(self, *parts: str) -> str:
        """`age_summary` in one line, e.g. for `samepage train` to print."""
        s = self.age_summary(*parts)
        if not s["rows"]:
            return "no training rows"
        age = s["age_days"]
        spread = ", ".join(f"{k} {v:,}" for k, v in s["rows_by_age"].items() if v)
        days = ", ".join(str(d) for d in s["snapshot_days"])
        return (
            f"{s['rows']:,} rows from {s['leads']:,} leads (snapshots at entry + {days} days); "
            f"lead age {age['min']:g} to {age['max']:g} days, median {age['median']:g} "
            f"(label window {s['label_window_days']} days): {spread}"
        )

    def _part_rows(self, parts: tuple[str, ...]) -> pd.DataFrame:
        return self.frame if not parts else self.frame.loc[self.frame["part"].isin(parts)]

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


def load_labels(
    settings: Settings,
    defs: Definitions,
    now: pd.Timestamp | str | None = None,
    snapshot_days: Sequence[float] = DEFAULT_SNAPSHOT_DAYS,
) -> Outcomes:
    """Labels from the workspace's stage history plus the feedback sales recorded through the API.

    `now` (default: the data's horizon) decides which windows are closed; without real
    timestamps every recorded outcome is final. `snapshot_days`: see `training.labels`.
    """
    from samepage.records import RecordStore, stage_history

    records = RecordStore.from_settings(settings)
    try:
        tables = workspace_tables(settings.data_dir, Inbox.of(records))  # API leads are leads like imported ones
        stages = stage_history(settings, tables.stages, records)
    finally:
        records.close()
    as_of = as_of_times(defs, tables.leads, stages)
    timed = has_real_timestamps(as_of)
    horizon = pd.Timestamp(now) if now is not None else (data_horizon(tables.leads, stages, tables.events) if timed else None)
    if horizon is not None and horizon.tzinfo is None:
        horizon = horizon.tz_localize("UTC")
    label_set = build_labels(defs, tables.leads, stages, now=horizon, outcomes_final=not timed, snapshot_days=snapshot_days)
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
    snapshot_days: Sequence[float] = DEFAULT_SNAPSHOT_DAYS,
) -> TrainingData:
    """Labelled snapshots from the stage history, features from Feast as of each snapshot, the split.

    `now` (default: the data's horizon) decides which label windows are closed. Data without
    real timestamps (every lead at one as-of time) has final outcomes, entry rows only and a
    stratified split. `snapshot_days` (default entry, +7, +30, +90 days; capped by the label
    window, at most `training.labels.MAX_SNAPSHOTS`): the later looks at each lead.
    `feature_service` defaults to `sql_likelihood_v<next version>`, applied to the Feast repo.
    """
    from features.feast_repo import apply_feature_service
    from features.freshness import refresh

    timings: dict[str, float] = {}
    with step(progress, "Checking the feature store is up to date with imports and the API", timings):
        freshness = refresh(settings, defs, rebuild_for_api=True)
    with step(progress, "Reading leads and the stage history (with sales feedback)", timings):
        outcomes = load_labels(settings, defs, now, snapshot_days)
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
    labels = label_set.snapshots
    split = split_labels(labels, test_fraction, calibration_fraction, seed=seed)  # fail before Feast
    what = f"Point-in-time features for {len(labels):,} snapshots of {len(label_set.labels):,} leads (Feast)"
    with step(progress, what, timings):
        features = training_frame(settings, defs, labels[["lead_id", "as_of"]], feature_service=feature_service)
    frame = features.copy()
    for column in FRAME_LABEL_COLUMNS:
        frame[column] = labels[column].to_numpy()
    frame["part"] = split.part.to_numpy()
    data = TrainingData(defs, frame, split, label_set, horizon, volume, basis, feature_service, seed, timings)
    data.freshness = freshness
    return data


def _bucket_names() -> list[str]:
    """Bucket names, upper edges included: a snapshot 30 days after entry is in "7-30 d"."""
    edges = AGE_EDGES
    names = [f"up to {edges[0]} d"]
    names += [f"{lo}-{hi} d" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return [*names, f"over {edges[-1]} d"]


def _round(value: float) -> float:
    return round(float(value), 1)

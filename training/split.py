"""Train / calibration / test split of the labelled rows, keeping each lead's snapshots together.

The unit of the split is the lead, not the row: every snapshot of a lead (its entry and the later
as-of times, see `training.labels`) lands in the same part, so no lead is learned from and judged
on. With real timestamps the split is by time of the leads' entry: the newest `test_fraction` of
leads is the test set (a model is judged on leads it could not have seen), and the newest
`calibration_fraction` of the remaining leads is the held-out calibration slice (it also decides
early stopping). Without timestamps (every lead at one as-of time, e.g. X Education) both cuts
are stratified random splits of the leads; `Split.kind` says which was used.

The test part keeps ALL snapshots of its leads, not only their entry rows: the service scores
leads as they are now, weeks or months after entry, so the test measures that mix of ages (the
entry rows alone are `labels.snapshot_day == 0` for a comparison with older runs). A later
snapshot of a train lead may lie after the test cut; it carries only that lead's own history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

SplitKind = Literal["time", "stratified"]
PARTS = ("train", "calibration", "test")


class SplitError(ValueError):
    """Too few rows or only one class: a model could not be trained or judged."""


@dataclass
class Split:
    """`part` holds 'train', 'calibration' or 'test' for each labelled row (same index)."""

    kind: SplitKind
    part: pd.Series
    test_from: pd.Timestamp | None = None

    def mask(self, name: str) -> np.ndarray:
        return (self.part == name).to_numpy()

    @property
    def counts(self) -> dict[str, int]:
        return {p: int((self.part == p).sum()) for p in PARTS}


def has_real_timestamps(as_of: pd.Series) -> bool:
    """More than one distinct as-of time means the data can be ordered in time."""
    return as_of.nunique() > 1


def split_labels(
    labels: pd.DataFrame,
    test_fraction: float = 0.2,
    calibration_fraction: float = 0.15,
    seed: int = 42,
    kind: SplitKind | None = None,
) -> Split:
    """Split `labels` (columns as_of, label; optional lead_id, entry_as_of) by lead.

    `kind=None` picks time when the leads' entry times are real. `Split.part` is per row.
    """
    if not 0 < test_fraction < 1 or not 0 < calibration_fraction < 1:
        raise SplitError("test_fraction and calibration_fraction must be between 0 and 1")
    leads = lead_table(labels)
    if kind is None:
        kind = "time" if has_real_timestamps(leads["as_of"]) else "stratified"
    if kind == "time":
        by_lead = _by_time(leads, test_fraction, calibration_fraction)
    else:
        by_lead = _stratified(leads, test_fraction, calibration_fraction, seed)
    if "lead_id" in labels.columns:
        part = labels["lead_id"].map(pd.Series(by_lead.part.to_numpy(), index=leads.index))
    else:
        part = pd.Series(by_lead.part.to_numpy(), index=labels.index)
    split = Split(by_lead.kind, part.astype("object"), by_lead.test_from)
    _check(labels, split)
    return split


def lead_table(labels: pd.DataFrame) -> pd.DataFrame:
    """One row per lead (index lead_id when given): its entry time as `as_of`, `label` 1 if any row is.

    The entry time is `entry_as_of` when the rows carry it, else the lead's earliest as-of time.
    """
    entry = labels["entry_as_of"] if "entry_as_of" in labels.columns else labels["as_of"]
    if "lead_id" not in labels.columns:
        return pd.DataFrame({"as_of": entry.to_numpy(), "label": labels["label"].to_numpy()})
    rows = pd.DataFrame({"lead_id": labels["lead_id"].to_numpy(), "as_of": entry.to_numpy(), "label": labels["label"].to_numpy()})
    return rows.groupby("lead_id", sort=False).agg(as_of=("as_of", "min"), label=("label", "max"))


def _by_time(labels: pd.DataFrame, test_fraction: float, calibration_fraction: float) -> Split:
    as_of = labels["as_of"]
    test_from = _cut(as_of, 1.0 - test_fraction)
    train_period = as_of < test_from
    calib_from = _cut(as_of[train_period], 1.0 - calibration_fraction)
    part = pd.Series("train", index=labels.index, dtype="object")
    part[train_period & (as_of >= calib_from)] = "calibration"
    part[~train_period] = "test"
    return Split("time", part, test_from)


def _cut(as_of: pd.Series, quantile: float) -> pd.Timestamp:
    """A timestamp such that rows at or after it are roughly the newest (1 - quantile) share.

    Rows with the same as-of time always fall on the same side, so no lead of the test day
    leaks into training.
    """
    if as_of.empty:
        raise SplitError("no rows to split")
    ordered = np.sort(as_of.to_numpy())
    idx = min(int(np.floor(quantile * len(ordered))), len(ordered) - 1)
    return pd.Timestamp(ordered[idx])


def _stratified(labels: pd.DataFrame, test_fraction: float, calibration_fraction: float, seed: int) -> Split:
    y = labels["label"].to_numpy()
    _need_both_classes(y, "labelled rows")
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    fit_idx, cal_idx = train_test_split(
        train_idx, test_size=calibration_fraction, stratify=y[train_idx], random_state=seed
    )
    part = np.empty(len(labels), dtype=object)
    part[fit_idx], part[cal_idx], part[test_idx] = "train", "calibration", "test"
    return Split("stratified", pd.Series(part, index=labels.index))


def _check(labels: pd.DataFrame, split: Split) -> None:
    for name in PARTS:
        y = labels["label"].to_numpy()[split.mask(name)]
        if len(y) == 0:
            raise SplitError(f"the {split.kind} split left the {name} part empty ({len(labels)} labelled rows)")
        _need_both_classes(y, f"the {name} part of the {split.kind} split")


def _need_both_classes(y: np.ndarray, where: str) -> None:
    n_pos = int(np.sum(y))
    if n_pos == 0 or n_pos == len(y):
        raise SplitError(
            f"{where}: {len(y)} rows, {n_pos} positive — both outcomes are needed; "
            "record more sales outcomes or widen the data range"
        )

"""Labels from the closed loop: what sales recorded in the stage history, read through the
definitions' `label` section by THE label rule in `samepage.outcomes` (the funnel report uses
the same one).

Snapshots: the service scores a lead as it is now, weeks or months after it entered, so training
looks at each lead at several as-of times too: its entry (`snapshot_day` 0) and the later points
`snapshot_days` after it (default 7, 30 and 90 days) while it has not yet reached the target.
Each snapshot is labelled by the same rule from its own as-of time: 1 when the lead reaches the
target (or a later funnel stage) within the window after that moment. A lead already at or past
the target at a snapshot's as-of time contributes no snapshot there or later.

Rows whose window has not closed yet at `now` are left out, never counted as negatives: a lead
created last week that has not been qualified yet is not a "no". Including them as negatives
would teach the model that new leads are bad; including only the ones that already converted
would teach the opposite. So every open-window row is dropped, whatever it reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from samepage import outcomes
from samepage.definitions import Definitions

LABEL_COLUMNS = [
    "lead_id",
    "as_of",
    "label",
    "window_end",
    "reached_stage",
    "reached_at",
    "disqualified",
    "disqualified_reason",
    "entry_as_of",
    "snapshot_day",
    "age_days",
]
# Entry plus three later looks: a week, a month, a quarter after it. Most leads that qualify do so
# within weeks, so later points mostly teach what an unanswered older lead looks like.
DEFAULT_SNAPSHOT_DAYS: tuple[int, ...] = (0, 7, 30, 90)
MAX_SNAPSHOTS = 6  # per lead, entry included: snapshots multiply the training rows
_DAY = pd.Timedelta(days=1)


class LabelError(ValueError):
    """Stage history that cannot produce labels; the message names the table, column and rows."""


@dataclass
class LabelSet:
    """The labelled rows plus what was left out and why (for the run's record).

    `snapshots`: every training row (a lead at one as-of time, `snapshot_day` days after its
    entry); `labels`: the entry rows only, one per lead (what the lead's label is).
    """

    labels: pd.DataFrame
    now: pd.Timestamp | None
    outcomes_final: bool
    n_open_window: int
    n_already_reached: int
    snapshots: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LABEL_COLUMNS))
    snapshot_days: tuple[int, ...] = (0,)
    n_snapshots_open: int = 0

    @property
    def summary(self) -> dict[str, int | float | str | bool]:
        n = len(self.labels)
        rows = self.snapshots
        return {
            "n_labelled": n,
            "n_positive": int(self.labels["label"].sum()) if n else 0,
            "positive_rate": float(self.labels["label"].mean()) if n else 0.0,
            "n_open_window_left_out": self.n_open_window,
            "n_already_at_target_left_out": self.n_already_reached,
            "label_horizon": "final outcomes (no timestamps)" if self.outcomes_final else str(self.now),
            "snapshot_days": ", ".join(str(d) for d in self.snapshot_days),
            "n_snapshot_rows": len(rows),
            "snapshot_positive_rate": float(rows["label"].mean()) if len(rows) else 0.0,
            "n_later_snapshots_open_left_out": self.n_snapshots_open,
        }


def snapshot_offsets(defs: Definitions, snapshot_days: Sequence[float] = DEFAULT_SNAPSHOT_DAYS) -> tuple[int, ...]:
    """The whole days after entry to look at each lead: entry always, none past the label window.

    A look later than the window would ask about a lead whose own outcome is already decided.
    """
    days = sorted({0, *(int(d) for d in snapshot_days)})
    if days[0] < 0:
        raise ValueError(f"snapshot_days: {days[0]} is before the lead's entry (days must be 0 or more)")
    days = [d for d in days if d <= defs.label.window_days]
    if len(days) > MAX_SNAPSHOTS:
        raise ValueError(f"snapshot_days: {len(days)} snapshots per lead (at most {MAX_SNAPSHOTS}, entry included)")
    return tuple(days)


def data_horizon(leads: pd.DataFrame, stages: pd.DataFrame, events: pd.DataFrame | None = None) -> pd.Timestamp:
    """The latest moment the data knows about: windows ending after it are still open."""
    stamps = [_utc(leads["created_at"], "leads", "created_at").max()]
    stamps.append(_utc(stages["occurred_at"], "stages", "occurred_at").max() if len(stages) else pd.NaT)
    if events is not None and len(events):
        stamps.append(_utc(events["occurred_at"], "events", "occurred_at").max())
    return max(s for s in stamps if not pd.isna(s))


def as_of_times(defs: Definitions, leads: pd.DataFrame, stages: pd.DataFrame) -> pd.Series:
    """Per lead (index lead_id): the definitions' as-of time (`samepage.outcomes.as_of_times`)."""
    if defs.label.as_of_stage is not None and len(stages):
        stages = stages.assign(lead_id=stages["lead_id"].astype(str), stage=stages["stage"].astype(str))
    return outcomes.as_of_times(defs, _created(leads), stages)


def build_labels(
    defs: Definitions,
    leads: pd.DataFrame,
    stages: pd.DataFrame,
    now: pd.Timestamp | None = None,
    outcomes_final: bool = False,
    snapshot_days: Sequence[float] = DEFAULT_SNAPSHOT_DAYS,
) -> LabelSet:
    """Label every snapshot whose window is closed at `now` (default: the caller passes the data horizon).

    `outcomes_final=True` is for data without real timestamps (e.g. a CRM export with one outcome
    column): every recorded outcome is final, so no window is open, and there is no later moment
    to look from, so each lead has its entry row only.
    """
    _check_stages(defs, stages)
    if not outcomes_final and now is None:
        raise ValueError("build_labels needs `now` (the data horizon) unless outcomes are final")
    stages = stages.assign(
        lead_id=stages["lead_id"].astype(str),
        stage=stages["stage"].astype(str),
        occurred_at=_utc(stages["occurred_at"], "stages", "occurred_at"),
    )
    created = _created(leads)
    entry = outcomes.as_of_times(defs, created, stages)
    offsets = (0,) if outcomes_final else snapshot_offsets(defs, snapshot_days)
    day = np.repeat(np.array(offsets, dtype="int64"), len(entry))
    entry_as_of = pd.concat([entry] * len(offsets))
    as_of = entry_as_of + pd.to_timedelta(day, unit="D")
    rule = outcomes.outcomes(defs, as_of, stages, None if outcomes_final else now)
    frame = pd.DataFrame(
        {
            "lead_id": as_of.index.to_numpy(),
            "as_of": rule["as_of"].array,
            "window_end": rule["window_end"].array,
            "reached_stage": rule["reached_stage"].array,
            "reached_at": rule["reached_at"].array,
            "label": rule["reached"].astype("int8").to_numpy(),
            "entry_as_of": entry_as_of.array,
            "snapshot_day": day,
        }
    )
    frame["age_days"] = (frame["as_of"] - frame["lead_id"].map(created)) / _DAY

    # Disqualification reasons, kept for reporting (latest disqualification of each lead).
    dq = stages.loc[stages["stage"] == "disqualified"].sort_values("occurred_at").drop_duplicates("lead_id", keep="last")
    dq = dq.set_index("lead_id")
    frame["disqualified"] = frame["lead_id"].isin(dq.index)
    frame["disqualified_reason"] = frame["lead_id"].map(dq["reason"]).astype("string")

    is_entry = day == 0
    reached_before = rule["reached_before"].to_numpy()
    # At entry: a lead already at the target before its as-of time has nothing left to predict.
    # Later: a lead at or past the target by that moment is no longer scored for it.
    at_as_of = (rule["reached_at"] <= rule["as_of"]).fillna(False).to_numpy(dtype=bool)
    already = np.where(is_entry, reached_before & (frame["label"].to_numpy() == 0), reached_before | at_as_of)
    open_window = np.zeros(len(frame), dtype=bool) if outcomes_final else ~rule["closed"].to_numpy(dtype=bool)
    keep = ~already & ~open_window
    # A lead left out at entry has no later snapshots either (the same reasons hold later).
    kept_entries = frame.loc[is_entry & keep, "lead_id"]
    keep &= is_entry | frame["lead_id"].isin(kept_entries).to_numpy()

    order = ["entry_as_of", "lead_id", "snapshot_day"]
    rows = frame.loc[keep, LABEL_COLUMNS].sort_values(order, kind="stable").reset_index(drop=True)
    labels = rows.loc[rows["snapshot_day"] == 0].reset_index(drop=True)
    n_open = int((is_entry & ~already & open_window).sum())
    n_snapshots_open = int((~is_entry & ~already & open_window & frame["lead_id"].isin(kept_entries).to_numpy()).sum())
    return LabelSet(
        labels,
        None if outcomes_final else now,
        outcomes_final,
        n_open,
        int((is_entry & already).sum()),
        snapshots=rows,
        snapshot_days=offsets,
        n_snapshots_open=n_snapshots_open,
    )


def _created(leads: pd.DataFrame) -> pd.Series:
    """created_at (UTC) indexed by lead_id as a string: training's key for every lead."""
    index = pd.Index(leads["lead_id"].astype(str), name="lead_id")
    return pd.Series(_utc(leads["created_at"], "leads", "created_at").array, index=index)


def _check_stages(defs: Definitions, stages: pd.DataFrame) -> None:
    missing = [c for c in ("lead_id", "stage", "occurred_at") if c not in stages.columns]
    if missing:
        raise LabelError(f"stages: missing columns {missing}")
    known = {s.key for s in defs.stages}
    bad = stages.loc[~stages["stage"].astype(str).isin(known)]
    if len(bad):
        first = bad.index[0]
        raise LabelError(
            f"stages: row {first}, column stage: unknown stage {str(bad.loc[first, 'stage'])!r} "
            f"({len(bad)} rows; known stages are {sorted(known)})"
        )


def _utc(values: pd.Series, table: str, column: str) -> pd.Series:
    try:
        out = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise LabelError(f"{table}: column {column} holds values that are not timestamps ({exc})") from None
    if out.isna().any():
        row = int(out.isna().to_numpy().argmax())
        raise LabelError(f"{table}: row {row}, column {column}: missing timestamp")
    return out

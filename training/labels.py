"""Labels from the closed loop: what sales recorded in the stage history, read through the
definitions' `label` section by THE label rule in `samepage.outcomes` (the funnel report uses
the same one).

One row per lead at its as-of time; the label is 1 when the rule says the lead reached the
target stage (or a later funnel stage) within the window, else 0.

Leads whose window has not closed yet at `now` are left out, never counted as negatives: a
lead created last week that has not been qualified yet is not a "no". Including them as
negatives would teach the model that new leads are bad; including only the ones that already
converted would teach the opposite. So every open-window lead is dropped, whatever it reached.
"""

from __future__ import annotations

from dataclasses import dataclass

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
]


class LabelError(ValueError):
    """Stage history that cannot produce labels; the message names the table, column and rows."""


@dataclass
class LabelSet:
    """The labelled rows plus what was left out and why (for the run's record)."""

    labels: pd.DataFrame
    now: pd.Timestamp | None
    outcomes_final: bool
    n_open_window: int
    n_already_reached: int

    @property
    def summary(self) -> dict[str, int | float | str | bool]:
        n = len(self.labels)
        return {
            "n_labelled": n,
            "n_positive": int(self.labels["label"].sum()) if n else 0,
            "positive_rate": float(self.labels["label"].mean()) if n else 0.0,
            "n_open_window_left_out": self.n_open_window,
            "n_already_at_target_left_out": self.n_already_reached,
            "label_horizon": "final outcomes (no timestamps)" if self.outcomes_final else str(self.now),
        }


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
) -> LabelSet:
    """Label every lead whose window is closed at `now` (default: the caller passes the data horizon).

    `outcomes_final=True` is for data without real timestamps (e.g. a CRM export with one outcome
    column): every recorded outcome is final, so no window is open.
    """
    _check_stages(defs, stages)
    if not outcomes_final and now is None:
        raise ValueError("build_labels needs `now` (the data horizon) unless outcomes are final")
    stages = stages.assign(
        lead_id=stages["lead_id"].astype(str),
        stage=stages["stage"].astype(str),
        occurred_at=_utc(stages["occurred_at"], "stages", "occurred_at"),
    )
    as_of = outcomes.as_of_times(defs, _created(leads), stages)
    rule = outcomes.outcomes(defs, as_of, stages, None if outcomes_final else now)
    frame = pd.DataFrame(
        {
            "lead_id": as_of.index.to_numpy(),
            "as_of": rule["as_of"].array,
            "window_end": rule["window_end"].array,
            "reached_stage": rule["reached_stage"].array,
            "reached_at": rule["reached_at"].array,
            "label": rule["reached"].astype("int8").to_numpy(),
        }
    )

    # Disqualification reasons, kept for reporting (latest disqualification of each lead).
    dq = stages.loc[stages["stage"] == "disqualified"].sort_values("occurred_at").drop_duplicates("lead_id", keep="last")
    dq = dq.set_index("lead_id")
    frame["disqualified"] = frame["lead_id"].isin(dq.index)
    frame["disqualified_reason"] = frame["lead_id"].map(dq["reason"]).astype("string")

    # Leads that were already at the target before their as-of time have nothing left to predict.
    already = rule["reached_before"].to_numpy() & frame["label"].eq(0).to_numpy()
    frame = frame.loc[~already]
    n_open = 0
    if not outcomes_final:
        open_window = ~rule["closed"].to_numpy()[~already]
        n_open = int(open_window.sum())
        frame = frame.loc[~open_window]
    labels = frame[LABEL_COLUMNS].sort_values(["as_of", "lead_id"], kind="stable").reset_index(drop=True)
    return LabelSet(labels, None if outcomes_final else now, outcomes_final, n_open, int(already.sum()))


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

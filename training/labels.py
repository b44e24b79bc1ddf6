"""Labels from the closed loop: what sales recorded in the stage history, read through the
definitions' `label` section.

One row per lead at its as-of time (the first time it entered `label.as_of_stage`, else its
creation time). The label is 1 when the lead reached `label.target_stage` or any later funnel
stage within `label.window_days` after its as-of time (both edges inclusive), else 0.

Leads whose window has not closed yet at `now` are left out, never counted as negatives: a
lead created last week that has not been qualified yet is not a "no". Including them as
negatives would teach the model that new leads are bad; including only the ones that already
converted would teach the opposite. So every open-window lead is dropped, whatever it reached.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.definitions import Definitions

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
    """Per lead (index lead_id): first entry into `label.as_of_stage`, else `created_at`."""
    created = pd.Series(
        _utc(leads["created_at"], "leads", "created_at").array, index=pd.Index(leads["lead_id"].astype(str), name="lead_id")
    )
    as_of_stage = defs.label.as_of_stage
    if as_of_stage is None or not len(stages):
        return created.rename("as_of")
    entered = stages.loc[stages["stage"].astype(str) == as_of_stage]
    first = entered.groupby(entered["lead_id"].astype(str))["occurred_at"].min()
    return first.reindex(created.index).fillna(created).rename("as_of")


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
    as_of = as_of_times(defs, leads, stages)
    window = pd.Timedelta(days=defs.label.window_days)
    frame = pd.DataFrame({"lead_id": as_of.index.to_numpy(), "as_of": as_of.array})
    frame["window_end"] = frame["as_of"] + window

    # First time each lead reached the target stage or a later funnel stage.
    targets = defs.stages_at_or_after(defs.label.target_stage)
    hits = stages.loc[stages["stage"].isin(targets)].merge(frame[["lead_id", "as_of"]], on="lead_id")
    before = hits.loc[hits["occurred_at"] < hits["as_of"], "lead_id"].unique()
    hits = hits.loc[hits["occurred_at"] >= hits["as_of"]].sort_values("occurred_at")
    first_hit = hits.drop_duplicates("lead_id").set_index("lead_id")
    frame["reached_stage"] = frame["lead_id"].map(first_hit["stage"])
    frame["reached_at"] = frame["lead_id"].map(first_hit["occurred_at"])
    frame["label"] = (frame["reached_at"].notna() & (frame["reached_at"] <= frame["window_end"])).astype("int8")
    # A hit after the window closed is not this label's outcome.
    late = frame["label"].eq(0)
    frame["reached_stage"] = frame["reached_stage"].astype("string").mask(late)
    frame["reached_at"] = frame["reached_at"].mask(late)

    # Disqualification reasons, kept for reporting (latest disqualification of each lead).
    dq = stages.loc[stages["stage"] == "disqualified"].sort_values("occurred_at").drop_duplicates("lead_id", keep="last")
    dq = dq.set_index("lead_id")
    frame["disqualified"] = frame["lead_id"].isin(dq.index)
    frame["disqualified_reason"] = frame["lead_id"].map(dq["reason"]).astype("string")

    # Leads that were already at the target before their as-of time have nothing left to predict.
    already = frame["lead_id"].isin(before) & frame["label"].eq(0)
    frame = frame.loc[~already]
    n_open = 0
    if not outcomes_final:
        open_window = frame["window_end"] > now
        n_open = int(open_window.sum())
        frame = frame.loc[~open_window]
    labels = frame[LABEL_COLUMNS].sort_values(["as_of", "lead_id"], kind="stable").reset_index(drop=True)
    return LabelSet(labels, None if outcomes_final else now, outcomes_final, n_open, int(already.sum()))


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

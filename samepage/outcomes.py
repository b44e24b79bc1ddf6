"""THE label rule of the shared definitions (`label` section), used by training and the funnel report alike.

A lead's as-of time is its first entry into `label.as_of_stage`, else its creation. It is
positive when it reached `label.target_stage` or a later funnel stage within
`label.window_days` after the as-of time (both edges inclusive). Its outcome is known only
once the window has closed (`window_end <= now`): an open window is neither a yes nor a no.
What each caller then leaves out (open windows, leads already past the target) is its own
choice; this module only says what happened to each lead.

Leads are keyed by whatever the caller uses (lead_id strings in training, row positions in the
report): the stage history's `lead_id` column must hold the same keys as the as-of index. A key
may repeat with different as-of times (training's snapshots of one lead at several moments):
each row is judged from its own as-of time by the same rule.
"""

from __future__ import annotations

import pandas as pd

from samepage.definitions import Definitions

OUTCOME_COLUMNS = ["as_of", "window_end", "reached", "reached_stage", "reached_at", "reached_before", "closed"]


def as_of_times(defs: Definitions, created: pd.Series, stages: pd.DataFrame) -> pd.Series:
    """Per lead (same index as `created`): first entry into `label.as_of_stage`, else creation.

    `stages` holds lead_id (keys of `created`'s index), stage and occurred_at (UTC timestamps).
    """
    as_of_stage = defs.label.as_of_stage
    if as_of_stage is None or not len(stages):
        return created.rename("as_of")
    entered = stages.loc[stages["stage"] == as_of_stage]
    first = entered.groupby("lead_id")["occurred_at"].min()
    return first.reindex(created.index).fillna(created).rename("as_of")


def outcomes(defs: Definitions, as_of: pd.Series, stages: pd.DataFrame, now: pd.Timestamp | None) -> pd.DataFrame:
    """Per row of `as_of` (same index and order; a lead key may repeat): what the label rule says happened.

    Columns: `as_of`; `window_end` (as_of + window_days); `reached` (the target or a later funnel
    stage was recorded in [as_of, window_end]); `reached_stage`/`reached_at` (that first hit, NA
    when not reached); `reached_before` (such a stage was recorded before as_of); `closed`
    (window_end <= now; every window is closed when `now` is None, i.e. outcomes are final).
    """
    window = pd.Timedelta(days=defs.label.window_days)
    frame = pd.DataFrame({"lead_id": as_of.index.to_numpy(), "as_of": as_of.array})
    frame["window_end"] = frame["as_of"] + window
    rows = frame[["lead_id", "as_of"]].assign(row=range(len(frame)))

    targets = defs.stages_at_or_after(defs.label.target_stage)
    hits = stages.loc[stages["stage"].isin(targets), ["lead_id", "stage", "occurred_at"]].merge(rows, on="lead_id")
    before = hits.loc[hits["occurred_at"] < hits["as_of"], "row"].unique()
    hits = hits.loc[hits["occurred_at"] >= hits["as_of"]].sort_values("occurred_at", kind="stable")
    first_hit = hits.drop_duplicates("row").set_index("row")
    position = pd.Series(range(len(frame)), index=frame.index)
    reached_at = position.map(first_hit["occurred_at"])
    frame["reached"] = reached_at.notna() & (reached_at <= frame["window_end"])
    # The first hit after the window closed is not this label's outcome.
    late = ~frame["reached"]
    frame["reached_stage"] = position.map(first_hit["stage"]).astype("string").mask(late)
    frame["reached_at"] = reached_at.mask(late)
    frame["reached_before"] = position.isin(before)
    frame["closed"] = True if now is None else frame["window_end"] <= now
    return frame[OUTCOME_COLUMNS].set_axis(as_of.index)

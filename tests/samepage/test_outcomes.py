"""The one label rule: as-of times, inclusive window edges, later stages, open windows."""

from __future__ import annotations

import pandas as pd

from samepage.definitions import Definitions
from samepage.outcomes import as_of_times, outcomes
from tests.conftest import make_stage

T0 = pd.Timestamp("2026-01-05T10:00:00Z")
DAY = pd.Timedelta(days=1)
SECOND = pd.Timedelta(seconds=1)


def _stages(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([make_stage(**r) for r in rows])


def _created(**by_lead: pd.Timestamp) -> pd.Series:
    return pd.Series(list(by_lead.values()), index=pd.Index(list(by_lead), name="lead_id"))


def test_as_of_is_the_first_entry_into_the_as_of_stage_else_creation(definitions: Definitions) -> None:
    stage = definitions.label.as_of_stage
    assert stage is not None
    created = _created(entered=T0, never=T0 + DAY)
    stages = _stages(
        [
            {"lead_id": "entered", "stage": stage, "occurred_at": T0 + 9 * DAY},
            {"lead_id": "entered", "stage": stage, "occurred_at": T0 + 3 * DAY},  # out of order: the earliest wins
            {"lead_id": "never", "stage": definitions.label.target_stage, "occurred_at": T0 + 2 * DAY},
        ]
    )
    as_of = as_of_times(definitions, created, stages)
    assert as_of.index.equals(created.index)
    assert as_of["entered"] == T0 + 3 * DAY
    assert as_of["never"] == T0 + DAY
    # Without any stage history every lead's as-of time is its creation.
    assert as_of_times(definitions, created, stages.iloc[:0]).tolist() == created.tolist()


def test_without_an_as_of_stage_creation_is_the_as_of_time(definitions: Definitions) -> None:
    defs = definitions.model_copy(update={"label": definitions.label.model_copy(update={"as_of_stage": None})})
    created = _created(a=T0)
    stages = _stages([{"lead_id": "a", "stage": "lead", "occurred_at": T0 + 5 * DAY}])
    assert as_of_times(defs, created, stages)["a"] == T0


def test_window_edges_are_inclusive(definitions: Definitions) -> None:
    window = definitions.label.window_days * DAY
    target = definitions.label.target_stage
    as_of = _created(start=T0, edge=T0, late=T0, never=T0)
    stages = _stages(
        [
            {"lead_id": "start", "stage": target, "occurred_at": T0},
            {"lead_id": "edge", "stage": target, "occurred_at": T0 + window},
            {"lead_id": "late", "stage": target, "occurred_at": T0 + window + SECOND},
            {"lead_id": "never", "stage": "mql", "occurred_at": T0 + DAY},
        ]
    )
    out = outcomes(definitions, as_of, stages, now=T0 + 2 * window)
    assert out["reached"].to_dict() == {"start": True, "edge": True, "late": False, "never": False}
    assert out.loc["edge", "reached_at"] == T0 + window and out.loc["edge", "reached_stage"] == target
    assert (out["window_end"] == T0 + window).all()
    # A hit after the window is not this window's outcome.
    assert pd.isna(out.loc["late", "reached_at"]) and pd.isna(out.loc["late", "reached_stage"])


def test_later_funnel_stages_count_and_off_funnel_ones_do_not(definitions: Definitions) -> None:
    target = definitions.label.target_stage
    later = [k for k in definitions.stages_at_or_after(target) if k != target]
    off_funnel = [s.key for s in definitions.stages if s.off_funnel]
    assert later and off_funnel
    as_of = _created(**dict.fromkeys(later + off_funnel, T0))
    stages = _stages([{"lead_id": k, "stage": k, "occurred_at": T0 + 10 * DAY} for k in later + off_funnel])
    out = outcomes(definitions, as_of, stages, now=None)
    assert out.loc[later, "reached"].all()
    assert out.loc[later, "reached_stage"].tolist() == later
    assert not out.loc[off_funnel, "reached"].any()


def test_the_first_hit_is_reported(definitions: Definitions) -> None:
    target = definitions.label.target_stage
    later = definitions.stages_at_or_after(target)[-1]
    as_of = _created(a=T0)
    stages = _stages(
        [
            {"lead_id": "a", "stage": later, "occurred_at": T0 + 20 * DAY},
            {"lead_id": "a", "stage": target, "occurred_at": T0 + 7 * DAY},
        ]
    )
    out = outcomes(definitions, as_of, stages, now=None)
    assert (out.loc["a", "reached_stage"], out.loc["a", "reached_at"]) == (target, T0 + 7 * DAY)


def test_open_windows_are_marked_unknown_and_a_window_ending_now_is_closed(definitions: Definitions) -> None:
    window = definitions.label.window_days * DAY
    target = definitions.label.target_stage
    as_of = _created(old=T0, young=T0 + 100 * DAY)
    stages = _stages([{"lead_id": "young", "stage": target, "occurred_at": T0 + 101 * DAY}])
    now = T0 + window + 50 * DAY
    out = outcomes(definitions, as_of, stages, now=now)
    assert out["closed"].to_dict() == {"old": True, "young": False}
    assert out.loc["young", "reached"]  # what it reached so far is still reported; callers decide
    exactly = outcomes(definitions, as_of, stages, now=T0 + 100 * DAY + window)
    assert exactly["closed"].all()
    # Without a `now` outcomes are final: no window is open.
    assert outcomes(definitions, as_of, stages, now=None)["closed"].all()


def test_a_hit_before_the_as_of_time_is_flagged_not_counted(definitions: Definitions) -> None:
    target = definitions.label.target_stage
    as_of = _created(before=T0, both=T0, clean=T0)
    stages = _stages(
        [
            {"lead_id": "before", "stage": target, "occurred_at": T0 - SECOND},
            {"lead_id": "both", "stage": target, "occurred_at": T0 - 5 * DAY},
            {"lead_id": "both", "stage": target, "occurred_at": T0 + 5 * DAY},
            {"lead_id": "clean", "stage": target, "occurred_at": T0 + 5 * DAY},
        ]
    )
    out = outcomes(definitions, as_of, stages, now=None)
    assert out["reached_before"].to_dict() == {"before": True, "both": True, "clean": False}
    assert out["reached"].to_dict() == {"before": False, "both": True, "clean": True}


def test_keys_may_be_row_positions_and_order_is_kept(definitions: Definitions) -> None:
    """The report keys leads by position in the leads table; a history row of another lead never leaks."""
    target = definitions.label.target_stage
    as_of = pd.Series([T0 + DAY, T0, T0 + 2 * DAY], index=[7, 2, 5])
    stages = pd.DataFrame(
        {
            "lead_id": [2, 9, 5],
            "stage": [target, target, "mql"],
            "occurred_at": [T0 + DAY, T0 + DAY, T0 + 3 * DAY],
        }
    )
    out = outcomes(definitions, as_of, stages, now=T0 + 1000 * DAY)
    assert out.index.tolist() == [7, 2, 5]
    assert out["as_of"].tolist() == as_of.tolist()
    assert out["reached"].tolist() == [False, True, False]
    empty = outcomes(definitions, as_of.iloc[:0], stages, now=T0)
    assert len(empty) == 0 and list(empty.columns) == list(out.columns)

"""Label construction from the stage history: window edges, open windows, later stages, snapshots."""

from __future__ import annotations

import pandas as pd
import pytest

from samepage import outcomes
from samepage.definitions import Definitions
from tests.conftest import make_lead, make_stage
from training.labels import MAX_SNAPSHOTS, LabelError, build_labels, data_horizon, snapshot_offsets

T0 = pd.Timestamp("2026-01-05T10:00:00Z")
DAY = pd.Timedelta(days=1)


def _leads(*ids: str, created: pd.Timestamp = T0) -> pd.DataFrame:
    return pd.DataFrame([make_lead(lead_id=i, created_at=created) for i in ids])


def _stages(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([make_stage(**r) for r in rows])


def _label(labels: pd.DataFrame, lead_id: str) -> int:
    return int(labels.set_index("lead_id").loc[lead_id, "label"])


def test_window_edges_are_inclusive(definitions: Definitions) -> None:
    window = definitions.label.window_days * DAY
    leads = _leads("edge", "late", "never")
    stages = _stages(
        [
            {"lead_id": "edge", "stage": "lead", "occurred_at": T0},
            {"lead_id": "edge", "stage": "sql", "occurred_at": T0 + window},
            {"lead_id": "late", "stage": "lead", "occurred_at": T0},
            {"lead_id": "late", "stage": "sql", "occurred_at": T0 + window + pd.Timedelta(seconds=1)},
            {"lead_id": "never", "stage": "lead", "occurred_at": T0},
            {"lead_id": "never", "stage": "mql", "occurred_at": T0 + 2 * DAY},
        ]
    )
    result = build_labels(definitions, leads, stages, now=T0 + 2 * window)
    labels = result.labels
    assert _label(labels, "edge") == 1
    assert _label(labels, "late") == 0
    assert _label(labels, "never") == 0
    # A hit after the window is not reported as this label's outcome.
    assert pd.isna(labels.set_index("lead_id").loc["late", "reached_at"])


def test_later_stages_count_and_off_funnel_does_not(definitions: Definitions) -> None:
    leads = _leads("opp", "cust", "dq")
    stages = _stages(
        [
            {"lead_id": "opp", "stage": "opportunity", "occurred_at": T0 + 10 * DAY},
            {"lead_id": "cust", "stage": "customer", "occurred_at": T0 + 20 * DAY},
            {"lead_id": "dq", "stage": "disqualified", "occurred_at": T0 + 5 * DAY, "reason": "student"},
        ]
    )
    labels = build_labels(definitions, leads, stages, now=T0 + 400 * DAY).labels.set_index("lead_id")
    assert labels.loc["opp", "label"] == 1 and labels.loc["opp", "reached_stage"] == "opportunity"
    assert labels.loc["cust", "label"] == 1
    assert labels.loc["dq", "label"] == 0
    assert labels.loc["dq", "disqualified"] and labels.loc["dq", "disqualified_reason"] == "student"
    assert pd.isna(labels.loc["opp", "disqualified_reason"])


def test_open_windows_are_left_out_not_negative(definitions: Definitions) -> None:
    window = definitions.label.window_days * DAY
    old, new_pos, new_neg = "old", "new-pos", "new-neg"
    leads = pd.concat([_leads(old), _leads(new_pos, new_neg, created=T0 + 100 * DAY)], ignore_index=True)
    stages = _stages([{"lead_id": new_pos, "stage": "sql", "occurred_at": T0 + 110 * DAY}])
    now = T0 + window + 50 * DAY  # old lead's window closed; the new leads' windows are open
    result = build_labels(definitions, leads, stages, now=now)
    assert result.labels["lead_id"].tolist() == [old]
    assert result.n_open_window == 2
    # A window ending exactly now is closed.
    exactly = build_labels(definitions, leads, stages, now=T0 + 100 * DAY + window)
    assert set(exactly.labels["lead_id"]) == {old, new_pos, new_neg}


def test_as_of_is_first_entry_into_the_as_of_stage(definitions: Definitions) -> None:
    assert definitions.label.as_of_stage == "lead"
    window = definitions.label.window_days * DAY
    entered = T0 + 60 * DAY
    leads = _leads("a")
    stages = _stages(
        [
            {"lead_id": "a", "stage": "lead", "occurred_at": entered},
            {"lead_id": "a", "stage": "lead", "occurred_at": entered + 5 * DAY},
            # Within the window measured from the lead stage, but not from creation.
            {"lead_id": "a", "stage": "sql", "occurred_at": T0 + window + 30 * DAY},
        ]
    )
    labels = build_labels(definitions, leads, stages, now=T0 + 3 * window).labels
    assert labels.loc[0, "as_of"] == entered
    assert labels.loc[0, "label"] == 1


def test_final_outcomes_keep_every_lead(definitions: Definitions) -> None:
    leads = _leads("a", "b")
    stages = _stages([{"lead_id": "a", "stage": "customer", "occurred_at": T0 + 30 * DAY}])
    result = build_labels(definitions, leads, stages, outcomes_final=True)
    assert sorted(result.labels["label"].tolist()) == [0, 1]
    with pytest.raises(ValueError, match="needs `now`"):
        build_labels(definitions, leads, stages)


def test_unknown_stage_is_named(definitions: Definitions) -> None:
    stages = _stages([{"lead_id": "a", "stage": "won"}])
    with pytest.raises(LabelError, match="row 0, column stage: unknown stage 'won'"):
        build_labels(definitions, _leads("a"), stages, now=T0)


def test_horizon_is_the_latest_known_moment() -> None:
    leads = _leads("a")
    stages = _stages([{"lead_id": "a", "stage": "sql", "occurred_at": T0 + 3 * DAY}])
    events = pd.DataFrame({"lead_id": ["a"], "occurred_at": [T0 + 9 * DAY], "type": ["page_view"]})
    assert data_horizon(leads, stages, events) == T0 + 9 * DAY
    assert data_horizon(leads, stages) == T0 + 3 * DAY


# -- snapshots: the same lead at several as-of times -------------------------------------------
def _rows(result_rows: pd.DataFrame, lead_id: str) -> dict[int, int]:
    """snapshot_day -> label for one lead."""
    mine = result_rows.loc[result_rows["lead_id"] == lead_id]
    return dict(zip(mine["snapshot_day"].tolist(), mine["label"].tolist(), strict=True))


def test_each_snapshot_is_labelled_from_its_own_as_of(definitions: Definitions) -> None:
    assert definitions.label.window_days == 180  # the days below are chosen around this window
    leads = _leads("sql40", "sql200", "never")
    stages = _stages(
        [
            {"lead_id": "sql40", "stage": "sql", "occurred_at": T0 + 40 * DAY},
            # Outside the window seen from entry (and from day 7), inside it from day 30 on.
            {"lead_id": "sql200", "stage": "sql", "occurred_at": T0 + 200 * DAY},
            {"lead_id": "never", "stage": "mql", "occurred_at": T0 + 3 * DAY},
        ]
    )
    result = build_labels(definitions, leads, stages, now=T0 + 1000 * DAY, snapshot_days=(7, 30, 90))
    rows = result.snapshots
    # Reached SQL at day 40: positive at entry, 7 and 30; at day 90 it is already an SQL, so no row.
    assert _rows(rows, "sql40") == {0: 1, 7: 1, 30: 1}
    assert _rows(rows, "sql200") == {0: 0, 7: 0, 30: 1, 90: 1}
    assert _rows(rows, "never") == {0: 0, 7: 0, 30: 0, 90: 0}
    # Every row is at entry + its day, and its window runs from there.
    assert (rows["as_of"] == rows["entry_as_of"] + pd.to_timedelta(rows["snapshot_day"], unit="D")).all()
    assert (rows["window_end"] == rows["as_of"] + definitions.label.window_days * DAY).all()
    assert rows["age_days"].tolist() == rows["snapshot_day"].astype(float).tolist()  # created == entered here
    # `labels` stays one row per lead, at entry.
    assert result.labels["lead_id"].is_unique and (result.labels["snapshot_day"] == 0).all()
    assert len(result.labels) == 3


def test_target_reached_exactly_at_a_snapshot_ends_the_snapshots(definitions: Definitions) -> None:
    stages = _stages([{"lead_id": "a", "stage": "opportunity", "occurred_at": T0 + 30 * DAY}])
    rows = build_labels(definitions, _leads("a"), stages, now=T0 + 1000 * DAY, snapshot_days=(7, 30, 90)).snapshots
    assert _rows(rows, "a") == {0: 1, 7: 1}


def test_no_snapshot_has_an_open_window(definitions: Definitions) -> None:
    window = definitions.label.window_days * DAY
    leads = pd.concat([_leads("old"), _leads("new", created=T0 + 100 * DAY)], ignore_index=True)
    now = T0 + window + 20 * DAY  # old: entry and day 7 closed, days 30 and 90 open; new: all open
    stages = _stages(
        [
            {"lead_id": "old", "stage": "lead", "occurred_at": T0},
            {"lead_id": "new", "stage": "lead", "occurred_at": T0 + 100 * DAY},
        ]
    )
    result = build_labels(definitions, leads, stages, now=now, snapshot_days=(7, 30, 90))
    assert _rows(result.snapshots, "old") == {0: 0, 7: 0}
    assert (result.snapshots["window_end"] <= now).all()
    assert result.n_open_window == 1  # the new lead, counted once
    assert result.n_snapshots_open == 2  # the old lead's days 30 and 90
    assert result.summary["n_snapshot_rows"] == 2


def test_a_lead_left_out_at_entry_has_no_later_snapshots(definitions: Definitions) -> None:
    stages = _stages(
        [
            {"lead_id": "a", "stage": "sql", "occurred_at": T0 - 5 * DAY},  # qualified before it entered
            {"lead_id": "a", "stage": "lead", "occurred_at": T0},
        ]
    )
    result = build_labels(definitions, _leads("a", created=T0 - 10 * DAY), stages, now=T0 + 1000 * DAY)
    assert result.snapshots.empty and result.n_already_reached == 1


def test_final_outcomes_have_entry_rows_only(definitions: Definitions) -> None:
    stages = _stages([{"lead_id": "a", "stage": "customer", "occurred_at": T0 + 30 * DAY}])
    result = build_labels(definitions, _leads("a", "b"), stages, outcomes_final=True, snapshot_days=(7, 30, 90))
    assert result.snapshot_days == (0,)
    assert len(result.snapshots) == 2 and (result.snapshots["snapshot_day"] == 0).all()


def test_snapshot_days_keep_entry_stay_in_the_window_and_are_bounded(definitions: Definitions) -> None:
    window = definitions.label.window_days
    assert snapshot_offsets(definitions, (90, 30, 7)) == (0, 7, 30, 90)
    assert snapshot_offsets(definitions, (30, window + 1)) == (0, 30)
    with pytest.raises(ValueError, match="before the lead's entry"):
        snapshot_offsets(definitions, (-1,))
    with pytest.raises(ValueError, match=f"at most {MAX_SNAPSHOTS}"):
        snapshot_offsets(definitions, range(0, MAX_SNAPSHOTS + 1))


def test_the_rule_judges_repeated_leads_row_by_row(definitions: Definitions) -> None:
    stages = _stages([{"lead_id": "a", "stage": "sql", "occurred_at": T0 + 40 * DAY}])
    stages["occurred_at"] = pd.to_datetime(stages["occurred_at"], utc=True)
    as_of = pd.Series([T0, T0 + 50 * DAY, T0 + 40 * DAY], index=pd.Index(["a", "a", "a"]))
    rule = outcomes.outcomes(definitions, as_of, stages, now=T0 + 100 * DAY)
    assert rule["reached"].tolist() == [True, False, True]
    assert rule["reached_before"].tolist() == [False, True, False]
    assert rule["closed"].tolist() == [False, False, False]
    assert rule["reached_at"].iloc[0] == T0 + 40 * DAY and pd.isna(rule["reached_at"].iloc[1])

"""Label construction from the stage history: window edges, open windows, later stages."""

from __future__ import annotations

import pandas as pd
import pytest

from samepage.definitions import Definitions
from tests.conftest import make_lead, make_stage
from training.labels import LabelError, build_labels, data_horizon

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

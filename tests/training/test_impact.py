"""The definitions preview's figures: training's threshold function on stored out-of-time predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from samepage.criteria import criteria_met
from samepage.definitions import Definitions, parse_definitions
from samepage.holdout import Holdout
from training.impact import NO_PREDICTIONS, preview_with
from training.threshold import capacity_threshold


def holdout(n: int = 400, seed: int = 0) -> Holdout:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    frame = pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "as_of": pd.Timestamp("2026-11-01T00:00:00Z"),
            "score": p,
            "label": (rng.random(n) < p).astype(int),
            "seniority": rng.choice(["VP", "Manager", "Student"], n),
            "industry": rng.choice(["Software", "Competitor", "Retail"], n),
            "unsubscribes_90d": rng.choice([0.0, 1.0], n, p=[0.9, 0.1]),
        }
    )
    return Holdout(frame, weekly_leads=250.0, volume_basis="given", note="synthetic", run_id="r1", model_version="3")


def changed(defs: Definitions, edit: Any) -> Definitions:
    data = defs.model_dump(mode="json", by_alias=True, exclude_none=True)
    edit(data)
    return parse_definitions(data, "proposed.yaml")


def test_a_threshold_moved_to_trainings_capacity_threshold_gives_trainings_figures(definitions: Definitions) -> None:
    h = holdout()
    y, p = h.frame["label"].to_numpy(), h.frame["score"].to_numpy()
    advice = capacity_threshold(definitions, y, p, h.weekly_leads, "given", criteria_met(definitions, h.frame))
    proposed = changed(definitions, lambda d: d["mql"].update(threshold=advice.capacity.value))
    result = preview_with(definitions, proposed, "proposed.yaml", h)
    assert result.proposed is not None and result.current is not None
    assert result.proposed.expected_mql_per_week == advice.capacity.expected_mql_per_week
    assert result.proposed.expected_sql_rate == advice.capacity.expected_sql_rate
    assert result.current.expected_mql_per_week == advice.current.expected_mql_per_week
    assert result.proposed.capacity_share == advice.capacity.expected_mql_per_week / 120
    assert not result.retrain_needed and result.verdict.startswith("No retrain needed")
    body = result.as_json()
    assert set(body) >= {"retrain_needed", "changes", "expected_mql_per_week", "expected_sql_rate", "capacity_share"}


def test_a_new_criterion_and_less_capacity_move_the_figures(definitions: Definitions) -> None:
    def edit(d: dict) -> None:
        d["mql"]["criteria"].append({"key": "not_retail", "description": "Not retail", "field": "industry", "not_in": ["Retail"]})
        d["sla"]["capacity"]["reps"] = 3

    result = preview_with(definitions, changed(definitions, edit), "proposed.yaml", holdout())
    assert result.current is not None and result.proposed is not None
    assert result.proposed.expected_mql_per_week < result.current.expected_mql_per_week
    assert result.proposed.capacity_per_week == 60
    assert result.proposed.capacity_share == result.proposed.expected_mql_per_week / 60


def test_without_predictions_the_words_and_verdict_remain(definitions: Definitions) -> None:
    result = preview_with(definitions, changed(definitions, lambda d: d["mql"].update(threshold=0.2)), "p.yaml", None)
    body = result.as_json()
    assert body["expected_mql_per_week"] is None and body["capacity_share"] is None
    assert body["changes"] == ["MQL threshold 0.35 → 0.2 (lower: more leads pass)."] and result.notes == [NO_PREDICTIONS]

"""The diff of two definitions in words, and the retrain verdict from the fingerprinted parts."""

from __future__ import annotations

from typing import Any

from samepage.changes import describe_changes, retrain_reasons
from samepage.definitions import Definitions, parse_definitions


def changed(defs: Definitions, edit: Any) -> Definitions:
    """A copy of the definitions with `edit(data)` applied to their plain data."""
    data = defs.model_dump(mode="json", by_alias=True, exclude_none=True)
    edit(data)
    return parse_definitions(data, "proposed.yaml")


def test_a_moved_threshold_is_said_and_needs_no_retrain(definitions: Definitions) -> None:
    proposed = changed(definitions, lambda d: d["mql"].update(threshold=0.3))
    assert describe_changes(definitions, proposed) == ["MQL threshold 0.35 → 0.3 (lower: more leads pass)."]
    assert retrain_reasons(definitions, proposed) == []


def test_an_added_feature_needs_a_retrain_and_says_which(definitions: Definitions) -> None:
    new = {"key": "pricing_views_7d", "kind": "event_count", "event_type": "pricing_page_view", "window_days": 7,
           "direction": "up", "group": "engagement", "label": "Pricing page views in the last 7 days"}  # fmt: skip
    proposed = changed(definitions, lambda d: d["features"].append(new))
    assert any("Feature added: “Pricing page views in the last 7 days”" in c for c in describe_changes(definitions, proposed))
    reasons = retrain_reasons(definitions, proposed)
    assert len(reasons) == 1 and "model features" in reasons[0] and "pricing_views_7d added" in reasons[0]


def test_a_feature_label_is_words_only_but_a_window_is_not(definitions: Definitions) -> None:
    def relabel(d: dict) -> None:
        d["features"][0]["label"] = "Where the lead came from"

    words = changed(definitions, relabel)
    assert describe_changes(definitions, words) == ["Feature source label Lead source → Where the lead came from."]
    assert retrain_reasons(definitions, words) == []

    def shorten(d: dict) -> None:
        feature = next(f for f in d["features"] if f["key"] == "demo_requests_90d")
        feature["window_days"] = 30

    reasons = retrain_reasons(definitions, changed(definitions, shorten))
    assert reasons and "demo_requests_90d: window_days 90 → 30" in reasons[0]


def test_label_icp_and_stage_order_are_bound_to_the_model(definitions: Definitions) -> None:
    label = retrain_reasons(definitions, changed(definitions, lambda d: d["label"].update(window_days=90)))
    assert label == ["the label (target stage, window, as-of stage) changed (label window days 180 → 90)"]
    icp = retrain_reasons(definitions, changed(definitions, lambda d: d["icp"]["countries"].append("Japan")))
    assert len(icp) == 1 and "ideal-customer profile" in icp[0] and "adds Japan" in icp[0]


def test_criteria_capacity_sla_stages_and_changelog_are_said(definitions: Definitions) -> None:
    def edit(d: dict) -> None:
        d["mql"]["criteria"] = [c for c in d["mql"]["criteria"] if c["key"] != "reachable"]
        d["sla"]["capacity"]["reps"] = 8
        d["sla"]["mql_follow_up_hours"] = 12
        d["stages"][3]["entry"] = "A lead that passed the MQL rule."
        d["changelog"].append({"version": "1.1.0", "date": "2026-12-01", "by": ["marketing"], "changes": "Eight reps."})

    proposed = changed(definitions, edit)
    said = describe_changes(definitions, proposed)
    assert any(
        c.startswith("MQL criterion removed: “The contact can be reached") and "unsubscribes_90d at most 0" in c for c in said
    )
    assert "Sales capacity 120 → 160 MQLs a week." in said
    assert "SLA mql follow up hours 24 → 12." in said
    assert "Stage Marketing Qualified Lead: entry criteria" in " ".join(said)
    assert "Changelog adds 1.1.0 (2026-12-01, signed by marketing; not yet by sales): Eight reps." in said
    assert retrain_reasons(definitions, proposed) == []


def test_the_same_file_changes_nothing(definitions: Definitions) -> None:
    assert describe_changes(definitions, definitions) == []
    assert retrain_reasons(definitions, definitions) == []

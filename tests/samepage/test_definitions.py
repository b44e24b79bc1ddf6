"""The definitions loader: the good file loads; each class of bad file is refused by name."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from samepage.definitions import DefinitionsError, load_definitions, parse_definitions
from tests.conftest import DEFINITIONS_FILE

RAW: dict[str, Any] = yaml.safe_load(DEFINITIONS_FILE.read_text())


def variant(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(RAW)
    data.update(changes)
    return data


def refused(data: Any) -> str:
    with pytest.raises(DefinitionsError) as info:
        parse_definitions(data, "defs.yaml")
    return str(info.value)


def test_repo_definitions_load(definitions) -> None:
    assert definitions.label.target_stage == "sql" and definitions.label.window_days == 180
    assert [s.key for s in definitions.funnel] == ["contact", "prospect", "lead", "mql", "sal", "sql", "opportunity", "customer"]
    assert {"disqualified", "recycled", "lost"} <= {s.key for s in definitions.stages if s.off_funnel}
    assert all(f.label for f in definitions.features)
    assert definitions.stages_at_or_after("sql") == ["sql", "opportunity", "customer"]


def test_version_string_has_contract_form(definitions) -> None:
    version, digest = definitions.version_string.split("+")
    assert version == RAW["version"]
    assert len(digest) == 12 and int(digest, 16) >= 0


def test_version_stable_across_key_order_and_whitespace(tmp_path: Path, definitions) -> None:
    reordered = {k: RAW[k] for k in reversed(list(RAW))}
    path = tmp_path / "defs.yaml"
    path.write_text("\n\n" + yaml.safe_dump(reordered, sort_keys=False, indent=4, width=200))
    assert load_definitions(path).version_string == definitions.version_string


def test_version_changes_with_content(definitions) -> None:
    changed = variant(mql={**RAW["mql"], "threshold": 0.5})
    assert parse_definitions(changed).version_string != definitions.version_string


def test_fingerprint_ignores_threshold_but_not_features(definitions) -> None:
    threshold_only = parse_definitions(variant(mql={**RAW["mql"], "threshold": 0.5}))
    assert threshold_only.fingerprint == definitions.fingerprint
    fewer = parse_definitions(variant(features=RAW["features"][:-1]))
    assert fewer.fingerprint != definitions.fingerprint
    longer_window = parse_definitions(variant(label={**RAW["label"], "window_days": 90}))
    assert longer_window.fingerprint != definitions.fingerprint


def test_unknown_stage_in_label_is_named() -> None:
    msg = refused(variant(label={**RAW["label"], "target_stage": "deal"}))
    assert "label.target_stage" in msg and "'deal'" in msg


def test_threshold_outside_unit_interval_is_named() -> None:
    msg = refused(variant(mql={**RAW["mql"], "threshold": 1.5}))
    assert "mql.threshold" in msg


def test_duplicate_feature_key_is_named() -> None:
    msg = refused(variant(features=RAW["features"] + [RAW["features"][0]]))
    assert "features: duplicate key 'source'" in msg


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "defs.yaml"
    path.write_text(DEFINITIONS_FILE.read_text() + '\nversion: "2.0.0"\n')
    with pytest.raises(DefinitionsError, match="duplicate key 'version'"):
        load_definitions(path)


def test_feature_without_label_is_named() -> None:
    features = copy.deepcopy(RAW["features"])
    del features[2]["label"]
    msg = refused(variant(features=features))
    assert "features.employees.label" in msg and "required" in msg.lower()


def test_feature_kind_needs_its_fields() -> None:
    features = copy.deepcopy(RAW["features"])
    features.append({"key": "clicks", "kind": "event_count", "label": "Clicks", "window_days": 30})
    assert "needs 'event_type'" in refused(variant(features=features))


def test_unknown_event_type_is_named() -> None:
    features = copy.deepcopy(RAW["features"])
    features.append({"key": "x_30d", "kind": "event_count", "event_type": "fax", "window_days": 30, "label": "Faxes"})
    assert "features.x_30d.event_type: unknown event type 'fax'" in refused(variant(features=features))


def test_missing_owner_is_refused() -> None:
    assert "owners" in refused(variant(owners={"marketing": RAW["owners"]["marketing"]}))


def test_unknown_top_level_key_is_named() -> None:
    assert "threshhold" in refused(variant(threshhold=0.3))


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    assert "mapping" in refused(["a", "list"])
    path = tmp_path / "bad.yaml"
    path.write_text("version: [unclosed\n")
    with pytest.raises(DefinitionsError, match="not valid YAML"):
        load_definitions(path)
    with pytest.raises(DefinitionsError, match="cannot read"):
        load_definitions(tmp_path / "missing.yaml")


def test_check_stage(definitions) -> None:
    assert definitions.check_stage("sal", None) is None
    assert "unknown stage" in (definitions.check_stage("won", None) or "")
    assert "needs a reason" in (definitions.check_stage("disqualified", None) or "")
    assert "unknown reason" in (definitions.check_stage("disqualified", "rude") or "")
    assert definitions.check_stage("disqualified", "student") is None


def test_stage_problem_names_the_field_at_fault(definitions) -> None:
    """One rule for every stage record (import, mapping, data checks, feedback): field and message."""
    assert definitions.stage_problem("sal", None) is None
    cases = {("won", None): "stage", (None, None): "stage", ("disqualified", None): "reason", ("disqualified", "rude"): "reason"}
    for (stage, reason), field in cases.items():
        problem = definitions.stage_problem(stage, reason)
        assert problem is not None and problem.field == field, (stage, reason)
        assert definitions.check_stage(stage or "", reason) == problem.message
    assert definitions.stage_problem("disqualified", "") == definitions.stage_problem("disqualified", None)


def with_rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return variant(points={"rules": list(rules)})


def test_shipped_definitions_carry_the_teams_points_rules(definitions) -> None:
    assert definitions.points is not None and definitions.points.scale.points_per_doubling > 0
    keys = set(definitions.feature_keys)
    assert {r.feature for r in definitions.points.rules} <= keys
    # Every engagement count says which way it pushes, so "0 page views" can never raise a score.
    counts = [f for f in definitions.features if f.kind in ("event_count", "distinct_channels")]
    assert counts and all(f.direction is not None for f in counts)
    xe = load_definitions(DEFINITIONS_FILE.parent / "definitions-xeducation.yaml")
    assert xe.points is not None and len(xe.points.rules) >= 5 and "last_activity" not in xe.feature_keys


def test_definitions_without_points_still_load() -> None:
    data = copy.deepcopy(RAW)
    data.pop("points")
    assert parse_definitions(data).points is None


def test_points_rule_on_an_unknown_feature_is_named() -> None:
    msg = refused(with_rules({"feature": "budget", "at_least": 1, "points": 5}))
    assert "points.rules[0] (budget)" in msg and "unknown feature 'budget'" in msg


def test_points_rule_must_fit_its_feature() -> None:
    assert "is a category" in refused(with_rules({"feature": "industry", "at_least": 3, "points": 5}))
    assert "is a number" in refused(with_rules({"feature": "employees", "in": [50], "points": 5}))
    assert "is yes/no" in refused(with_rules({"feature": "icp_industry", "in": ["yes please"], "points": 5}))
    assert "is yes/no" in refused(with_rules({"feature": "icp_industry", "per_unit": 5}))


def test_points_rule_needs_exactly_one_way_to_score() -> None:
    msg = refused(with_rules({"feature": "demo_requests_90d", "points": 5}))
    assert "points.rules[0]" in msg and "needs per_unit, or points with in, at_least or at_most" in msg
    assert "take no points" in refused(with_rules({"feature": "demo_requests_90d", "per_unit": 5, "points": 3}))
    assert "needs points" in refused(with_rules({"feature": "demo_requests_90d", "at_least": 1}))
    assert "go with per_unit" in refused(with_rules({"feature": "demo_requests_90d", "at_least": 1, "points": 2, "max_units": 3}))
    assert "is above at_most" in refused(with_rules({"feature": "employees", "at_least": 10, "at_most": 5, "points": 2}))
    assert "points.scale.points_per_doubling" in refused(
        variant(points={"scale": {"points_per_doubling": 0}, "rules": [{"feature": "demo_requests_90d", "per_unit": 5}]})
    )


def test_points_do_not_bind_a_model(definitions) -> None:
    other = copy.deepcopy(RAW)
    other["points"]["rules"][0]["points"] = 99
    changed = parse_definitions(other)
    assert changed.fingerprint == definitions.fingerprint and changed.version_string != definitions.version_string


# -- grades and actionable features ---------------------------------------------------------------
def _grades(*bands: tuple[str, float, float]) -> list[dict[str, Any]]:
    return [{"grade": g, "min": lo, "max": hi, "description": f"grade {g}"} for g, lo, hi in bands]


def test_grades_read_the_score_in_bands(definitions) -> None:
    assert [g.grade for g in definitions.grade_bands] == ["A", "B", "C", "D"]
    bands = {g.grade: (g.min, g.max) for g in definitions.grade_bands}
    for letter, (lo, hi) in bands.items():
        assert definitions.grade(lo) == letter
        assert definitions.grade((lo + hi) / 2) == letter
    assert definitions.grade(1.0) == "A" and definitions.grade(0.0) == "D"
    assert definitions.grade(bands["B"][0] - 1e-9) == "C"  # a band holds its min, not its max
    scores = [x for lo, hi in bands.values() for x in (lo, hi, (lo + hi) / 2, lo - 1e-9)] + [-0.5, 1.5]
    assert definitions.grades_of(scores) == [definitions.grade(x) for x in scores]  # a batch: each score's own


@pytest.mark.parametrize(
    ("bands", "words"),
    [
        (
            _grades(("A", 0.6, 1.0), ("B", 0.35, 0.5), ("C", 0.15, 0.35), ("D", 0.0, 0.15)),
            "gap between grade B (up to 0.5) and grade A (from 0.6)",
        ),
        (
            _grades(("A", 0.5, 1.0), ("B", 0.35, 0.6), ("C", 0.15, 0.35), ("D", 0.0, 0.15)),
            "grade B (up to 0.6) overlaps grade A (from 0.5)",
        ),
        (_grades(("A", 0.6, 1.0), ("B", 0.35, 0.6), ("C", 0.15, 0.35), ("D", 0.05, 0.15)), "must start at 0"),
        (_grades(("A", 0.6, 0.9), ("B", 0.35, 0.6), ("C", 0.15, 0.35), ("D", 0.0, 0.15)), "must end at 1"),
        (_grades(("A", 0.6, 1.0), ("B", 0.35, 0.6), ("B", 0.15, 0.35), ("D", 0.0, 0.15)), "exactly once"),
        (_grades(("D", 0.6, 1.0), ("B", 0.35, 0.6), ("C", 0.15, 0.35), ("A", 0.0, 0.15)), "A must be the highest band"),
        (_grades(("A", 0.6, 1.0), ("B", 0.6, 0.6), ("C", 0.15, 0.6), ("D", 0.0, 0.15)), "min 0.6 must be below max 0.6"),
    ],
)
def test_grade_bands_must_cover_zero_to_one_once(bands: list[dict[str, Any]], words: str) -> None:
    message = refused(variant(grades=bands))
    assert "grades" in message and words in message, message


def test_grades_default_to_bands_around_the_threshold() -> None:
    data = variant()
    del data["grades"]
    defs = parse_definitions(data)
    threshold = defs.mql.threshold
    assert defs.grade(threshold) == "B" and defs.grade(threshold - 1e-9) == "C"


def test_actionable_only_on_event_counts_that_raise_the_score() -> None:
    features = copy.deepcopy(RAW["features"])
    for f in features:
        if f["key"] in ("unsubscribes_90d", "seniority"):
            f["actionable"] = True
    message = refused(variant(features=features))
    assert "features.seniority: actionable" in message, message
    assert "only an event count with direction up" in message


def test_grades_and_actionable_need_no_retrain(definitions) -> None:
    """Like the threshold: neither is in the fingerprint a model is bound to (the version string changes)."""
    features = copy.deepcopy(RAW["features"])
    for f in features:
        f.pop("actionable", None)
    other_bands = _grades(("A", 0.8, 1.0), ("B", 0.5, 0.8), ("C", 0.2, 0.5), ("D", 0.0, 0.2))
    changed = parse_definitions(variant(features=features, grades=other_bands))
    assert changed.fingerprint == definitions.fingerprint
    assert changed.version_string != definitions.version_string
    assert not changed.actionable_features and definitions.actionable_features

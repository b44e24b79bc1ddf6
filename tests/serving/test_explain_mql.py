"""The one explanation and the MQL verdict, on a small bundle trained here (no workspace needed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from samepage.definitions import Criterion, Definitions
from serving.explain import MIN_REASON, REASONS_PER_SIDE, SMALL_BATCH, encode, explain, format_value
from serving.mql import check, verdict
from tests.serving.conftest import train_bundle


def synthetic_frame(defs: Definitions, n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for f in defs.features:
        if f.kind == "icp_match":
            cols[f.key] = rng.integers(0, 2, size=n).astype(float)
        elif f.is_categorical:
            cols[f.key] = rng.choice(["Software", "Retail", "Student", "VP", None], size=n)
        else:
            v = rng.poisson(2.0, size=n).astype(float)
            v[rng.random(n) < 0.1] = np.nan
            cols[f.key] = v
    frame = pd.DataFrame(cols)
    logit = (
        0.8 * np.nan_to_num(frame["demo_requests_90d"].to_numpy())
        - 0.6 * np.nan_to_num(frame["unsubscribes_90d"].to_numpy())
        - 1.0
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def bundle_and_frame(definitions: Definitions):
    frame, y = synthetic_frame(definitions, 600)
    return train_bundle(frame, definitions, y, rounds=30), frame


def test_contributions_are_exact_and_complete(bundle_and_frame, definitions: Definitions) -> None:
    bundle, frame = bundle_and_frame
    exps = explain(bundle, definitions, frame)
    proba = bundle.predict_proba(frame)
    assert len(exps) == len(frame)
    for exp, p in zip(exps, proba, strict=True):
        assert exp.score == pytest.approx(p, abs=1e-9)
        logit = math.log(exp.score / (1 - exp.score))
        assert exp.base_value + sum(c["contribution"] for c in exp.contributions) == pytest.approx(logit, abs=1e-6)
        assert [c["feature"] for c in exp.contributions] != []
        assert sorted(c["feature"] for c in exp.contributions) == sorted(definitions.feature_keys)
        mags = [abs(c["contribution"]) for c in exp.contributions]
        assert mags == sorted(mags, reverse=True)
        assert all(c["label"] == definitions.feature(c["feature"]).label for c in exp.contributions)


def test_reasons_are_the_top_pushes_in_plain_words(bundle_and_frame, definitions: Definitions) -> None:
    bundle, frame = bundle_and_frame
    exp = explain(bundle, definitions, frame)
    some_up = False
    raising: set[str] = set()
    lowering: set[str] = set()

    def shown(c) -> str:
        if definitions.feature(c["feature"]).kind == "icp_match":
            return {1: "yes", 0: "no", None: "unknown"}[c["value"]]
        return format_value(c["value"])

    for e in exp:
        ups = [c for c in e.contributions if c["contribution"] >= MIN_REASON][:REASONS_PER_SIDE]
        downs = [c for c in e.contributions if c["contribution"] <= -MIN_REASON][:REASONS_PER_SIDE]
        assert e.reasons_up == [f"{c['label']}: {shown(c)} (raises the score)" for c in ups]
        assert e.reasons_down == [f"{c['label']}: {shown(c)} (lowers the score)" for c in downs]
        some_up |= bool(e.reasons_up)
        raising.update(r.removesuffix(" (raises the score)") for r in e.reasons_up)
        lowering.update(r.removesuffix(" (lowers the score)") for r in e.reasons_down)
        assert e.values == {c["feature"]: c["value"] for c in e.contributions}
    assert some_up
    assert raising & lowering, "a feature's value that raises one lead's score and lowers another's"


def test_values_are_plain_json(bundle_and_frame, definitions: Definitions) -> None:
    bundle, frame = bundle_and_frame
    row = frame.iloc[[0]].copy()
    row["employees"] = np.nan
    row["demo_requests_90d"] = 2.0
    row["industry"] = "Software"
    c = {x["feature"]: x["value"] for x in explain(bundle, definitions, row)[0].contributions}
    assert c["employees"] is None and c["demo_requests_90d"] == 2 and isinstance(c["demo_requests_90d"], int)
    assert c["industry"] == "Software"


def test_a_batch_explains_each_lead_as_one_lead_calls_do(bundle_and_frame, definitions: Definitions) -> None:
    """Batches take the column-at-once path; single leads the per-value one: same answers."""
    bundle, frame = bundle_and_frame
    batch = frame.iloc[: SMALL_BATCH + 6].reset_index(drop=True).copy()
    batch.loc[0, "employees"] = 1e20  # whole, but beyond exact integers: stays a float
    batch.loc[1, "employees"] = -0.0
    batch.loc[2, "employees"] = 2.5
    batch.loc[3, "employees"] = np.inf
    many = [e.as_dict() | {"score": e.score} for e in explain(bundle, definitions, batch)]
    ones = [explain(bundle, definitions, batch.iloc[[i]])[0] for i in range(len(batch))]
    assert many == [e.as_dict() | {"score": pytest.approx(e.score, abs=1e-12)} for e in ones]
    values = [{c["feature"]: c["value"] for c in e["contributions"]}["employees"] for e in many[:4]]
    assert values == [1e20, 0, 2.5, None] and [type(v) for v in values[:3]] == [float, int, float]


def test_fast_encoding_equals_the_bundle_encoder(bundle_and_frame, definitions: Definitions) -> None:
    bundle, frame = bundle_and_frame
    odd = frame.copy()
    odd.loc[0, "industry"] = "Never seen"  # unseen category
    odd.loc[1, "industry"] = None
    odd["seniority"] = odd["seniority"].astype(object)
    odd.loc[2, "seniority"] = float("nan")
    odd["employees"] = odd["employees"].astype(object)
    odd.loc[3, "employees"] = None
    odd.loc[4, "employees"] = "12"
    for f in (frame, odd):
        np.testing.assert_array_equal(encode(bundle.encoder, f), bundle.encoder.transform(f))


def test_format_value() -> None:
    assert format_value(2) == "2"
    assert format_value(40_000_000) == "40,000,000"
    assert format_value(3.5) == "3.5"
    assert format_value(None) == "unknown"
    assert format_value("Software") == "Software"


def test_criteria_rules() -> None:
    not_student = Criterion(key="a", description="d", field="seniority", not_in=["Student"], if_missing="met")
    assert check(not_student, "VP") and not check(not_student, "Student") and not check(not_student, "student")
    assert check(not_student, None)
    reachable = Criterion(key="b", description="d", field="unsub", max=0, if_missing="not_met")
    assert check(reachable, 0.0) and not check(reachable, 1.0) and not check(reachable, float("nan"))
    in_rule = Criterion(key="c", description="d", field="country", **{"in": ["Canada"]})
    assert check(in_rule, "Canada") and not check(in_rule, "Peru")
    ranged = Criterion(key="d", description="d", field="employees", min=10, max=100)
    assert check(ranged, 10) and check(ranged, 100) and not check(ranged, 9) and not check(ranged, "many")


def test_verdict_pass_and_fail_sentences(definitions: Definitions) -> None:
    t = definitions.mql.threshold
    ok = verdict(definitions, t, {"seniority": "VP", "industry": "Software", "unsubscribes_90d": 0})
    assert ok.passed and all(c.met for c in ok.criteria)
    assert ok.summary.startswith("MQL:") and f"{t:.2f}" in ok.summary and "criteria are met" in ok.summary

    low = verdict(definitions, t - 0.1, {"seniority": "VP"})
    assert not low.passed and "below the threshold" in low.summary and "fails" not in low.summary

    both = verdict(definitions, t - 0.1, {"seniority": "Student", "unsubscribes_90d": 2})
    failed = {c.key for c in both.criteria if not c.met}
    assert failed == {"not_student", "reachable"}
    for c in definitions.mql.criteria:
        assert (c.description in both.summary) == (c.key in failed)
    # each failed criterion's value, named as the definitions label its field (the words of the reasons)
    labels = definitions.feature_labels
    assert f"({labels['seniority']}: Student)" in both.summary and f"({labels['unsubscribes_90d']}: 2)" in both.summary
    assert "unsubscribes_90d" not in both.summary

    high_but_student = verdict(definitions, 0.99, {"seniority": "Student"})
    assert (
        not high_but_student.passed and "at or above" in high_but_student.summary and ", but it fails" in high_but_student.summary
    )


def test_verdicts_of_a_batch_are_each_leads_own(definitions: Definitions) -> None:
    """The batch form checks each distinct value once; every lead still gets exactly its own verdict."""
    from serving.mql import verdicts

    t = definitions.mql.threshold
    seniorities = ["VP", "Student", "student", None, "VP", float("nan"), ["VP"], True, 1]
    unsubscribes = [0, 1, 0.0, None, True, 2, 0, 0, False]
    rows = [
        {"seniority": s, "industry": ind, "unsubscribes_90d": u}
        for s in seniorities
        for u in unsubscribes
        for ind in ("Software", "Competitor", "competitor ", None)
    ]
    scores = [t + (0.1 if i % 3 else -0.1) for i in range(len(rows))]
    batch = verdicts(definitions, scores, rows)
    assert batch == [verdict(definitions, s, r) for s, r in zip(scores, rows, strict=True)]
    assert {v.passed for v in batch} == {True, False} and len({v.summary for v in batch}) > 20

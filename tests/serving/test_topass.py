"""`mql.to_pass`, `grade` and `trend` through the real app on the demo workspace."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from samepage.definitions import Definitions
from samepage.settings import Settings
from serving.schemas import ScoresOut
from tests.serving.conftest import AUTH


def _batch(client: TestClient, leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    resp = client.post("/v1/score/batch", json={"leads": leads}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    ScoresOut.model_validate(resp.json())
    return resp.json()["results"]


@pytest.fixture(scope="module")
def newest(client: TestClient, demo_leads: pd.DataFrame) -> list[dict[str, Any]]:
    """The 1,000 newest demo leads scored in one batch (the ones with recent engagement)."""
    ids = demo_leads.sort_values("created_at")["lead_id"].astype(str).tolist()[-1000:]
    return _batch(client, [{"lead_id": i} for i in ids])


def test_every_suggested_change_passes_when_rescored(client: TestClient, newest: list[dict[str, Any]]) -> None:
    suggested = [r for r in newest if not r["mql"]["passed"] and r["mql"]["to_pass"]]
    assert len(suggested) >= 10, "the demo data should have leads a few events away from the threshold"
    again = _batch(
        client, [{"lead_id": r["lead_id"], "attributes": {c["feature"]: c["to"] for c in r["mql"]["to_pass"]}} for r in suggested]
    )
    for before, after in zip(suggested, again, strict=True):
        assert after["mql"]["passed"], (before["mql"]["to_pass"], after["mql"]["summary"])
        assert after["score"] == pytest.approx(before["mql"]["score_if"], abs=1e-9)  # exactly the model's score
        assert before["mql"]["score_if"] >= before["mql"]["threshold"]
        assert "It would be an MQL after " in before["mql"]["summary"]


def test_no_fewer_events_would_pass(client: TestClient, newest: list[dict[str, Any]], definitions: Definitions) -> None:
    """The smallest set: one event less of any suggested kind (when there is more than one event) does not pass."""
    variants = []
    for r in newest:
        changes = r["mql"]["to_pass"] or []
        by_type: dict[str, list[dict[str, Any]]] = {}
        for c in changes:
            by_type.setdefault(str(definitions.feature(c["feature"]).event_type), []).append(c)
        if sum(c[0]["to"] - (c[0]["from"] or 0) for c in by_type.values()) < 2:
            continue  # one event: fewer is no event at all, which is the lead as scored
        for dropped in by_type:
            attrs = {c["feature"]: c["to"] - (1 if t == dropped else 0) for t, cs in by_type.items() for c in cs}
            variants.append({"lead_id": r["lead_id"], "attributes": attrs})
    assert variants, "some suggestions should take more than one event"
    assert not any(r["mql"]["passed"] for r in _batch(client, variants[:1000]))


def test_mqls_have_no_to_pass_and_the_rest_an_answer(newest: list[dict[str, Any]]) -> None:
    for r in newest:
        if r["mql"]["passed"]:
            assert r["mql"]["to_pass"] is None and r["mql"]["score_if"] is None
        else:
            assert isinstance(r["mql"]["to_pass"], list)
            assert (r["mql"]["score_if"] is None) == (r["mql"]["to_pass"] == [])
    nothing = [r for r in newest if r["mql"]["to_pass"] == [] and all(c["met"] for c in r["mql"]["criteria"])]
    assert nothing, "some leads are too far from the threshold for a few events"
    assert all("No small change of actionable features" in r["mql"]["summary"] for r in nothing)


def test_a_student_gets_no_steps_and_the_criterion_named(client: TestClient, demo_leads: pd.DataFrame) -> None:
    students = demo_leads.loc[demo_leads["seniority"] == "Student", "lead_id"].astype(str).tolist()[:20]
    assert students
    for r in _batch(client, [{"lead_id": i} for i in students]):
        assert not r["mql"]["passed"]
        assert r["mql"]["to_pass"] == [] and r["mql"]["score_if"] is None
        assert "No step marketing can take makes it an MQL while it fails “The contact is not a student”" in r["mql"]["summary"]


def test_grade_is_the_band_of_the_score(newest: list[dict[str, Any]], definitions: Definitions) -> None:
    bands = {g.grade: g for g in definitions.grade_bands}
    for r in newest:
        band = bands[r["grade"]]
        assert band.min <= r["score"] and (r["score"] < band.max or band.max == 1.0)


def test_trend_between_two_scorings(client: TestClient) -> None:
    """A second scoring right after the first (its save still queued or not) sees the first; then a third after a flush."""
    lead = {"lead_id": "trend-new-lead", "attributes": {"seniority": "VP", "industry": "Software", "employees": 300}}
    first = client.post("/v1/score", json=lead, headers=AUTH).json()
    assert first["trend"] is None  # never scored before
    more = {**lead, "attributes": {**lead["attributes"], "demo_requests_90d": 2, "pricing_views_30d": 3}}
    second = client.post("/v1/score", json=more, headers=AUTH).json()
    assert second["score"] != first["score"]
    assert second["trend"]["previous_score"] == first["score"]
    assert datetime.fromisoformat(second["trend"]["previous_at"]) == datetime.fromisoformat(first["scored_at"])
    assert second["trend"]["delta"] == pytest.approx(second["score"] - first["score"], abs=1e-12)
    assert client.get("/v1/leads/trend-new-lead", headers=AUTH).status_code == 200  # flushes the writer
    third = _batch(client, [lead])[0]
    assert third["trend"]["previous_score"] == second["score"]
    assert third["trend"]["delta"] == pytest.approx(first["score"] - second["score"], abs=1e-12)


def test_lead_page_shows_grade_trend_and_next_step(client: TestClient, newest: list[dict[str, Any]]) -> None:
    r = next(r for r in newest if r["mql"]["to_pass"])
    client.post("/v1/score", json={"lead_id": r["lead_id"]}, headers=AUTH)  # a second score: a trend
    page = client.get(f"/leads/{r['lead_id']}").text
    assert 'id="grade"' in page and 'id="to-pass"' in page and "Would be an MQL after " in page
    assert 'id="trend"' in page and "since " in page


# -- the search itself, on the team's points rules (exact and monotone: the expected answers follow) -------
def _search(defs: Definitions, rows: list[dict[str, Any]]) -> list[Any]:
    from samepage.bundle import PointsBundle
    from serving.explain import explain
    from serving.mql import verdict
    from serving.topass import to_pass

    bundle = PointsBundle.from_definitions(defs)
    frame = pd.DataFrame([{k: row.get(k) for k in defs.feature_keys} for row in rows])
    exps = explain(bundle, defs, frame)
    values = [{c["feature"]: c["value"] for c in e.contributions} for e in exps]
    verdicts = [verdict(defs, e.score, v) for e, v in zip(exps, values, strict=True)]
    return to_pass(bundle, defs, bundle.encoder.transform(frame), verdicts, values)


ZERO = {"icp_industry": 0.0, "icp_employees": 0.0, "icp_country": 0.0, "icp_persona": 0.0, "seniority": "VP"}
ZERO |= dict.fromkeys(
    ("demo_requests_90d", "trial_requests_90d", "pricing_views_30d", "pricing_views_90d", "unsubscribes_90d"), 0
)


def test_the_fewest_events_then_the_highest_score(definitions: Definitions) -> None:
    # 40 points; 42.1 reach the threshold 0.35 on the points scale: one demo request (+20) beats a pricing view (+10).
    near = {**ZERO, "icp_industry": 1.0, "icp_employees": 1.0, "icp_country": 1.0}
    mql = {**near, "icp_persona": 1.0}  # 55 points
    found, none = _search(definitions, [near, mql])
    assert none is None
    assert found.changes == [
        {"feature": "demo_requests_90d", "label": "Demo requests in the last 90 days", "from": 0, "to": 1}
    ]
    assert found.score_if == pytest.approx(0.5)  # 60 points: even odds
    assert found.note.startswith("It would be an MQL after a demo request (score 0.50)")


def test_too_far_for_a_few_events_and_criteria_no_event_changes(definitions: Definitions) -> None:
    far = {**ZERO, "days_since_last_activity": 200}  # -20 points; three events add at most 60
    student = {**ZERO, "seniority": "Student"}
    unsubscribed = {**ZERO, "icp_industry": 1.0, "icp_employees": 1.0, "icp_country": 1.0, "unsubscribes_90d": 1}
    a, b, c = _search(definitions, [far, student, unsubscribed])
    assert a.changes == [] and a.score_if is None and "No small change of actionable features" in a.note
    assert b.changes == [] and "while it fails “The contact is not a student”" in b.note
    assert c.changes == [] and "“The contact can be reached" in c.note


def test_a_criterion_on_an_actionable_count_is_checked_on_the_new_count(definitions: Definitions) -> None:
    from samepage.definitions import Criterion

    asked = Criterion(key="asked_for_demo", description="Asked for a demo", field="demo_requests_90d", min=1)
    defs = definitions.model_copy(update={"mql": definitions.mql.model_copy(update={"criteria": [asked]})})
    fit = {**ZERO, "icp_industry": 1.0, "icp_employees": 1.0, "icp_country": 1.0, "icp_persona": 1.0}  # above the threshold
    (found,) = _search(defs, [fit])
    assert [c["feature"] for c in found.changes] == ["demo_requests_90d"]


def test_combinations_come_fewest_first() -> None:
    from serving.topass import combinations

    counts = combinations(7, 3)
    assert len(counts) == 7 + 28 + 84 and (counts.sum(axis=1) == sorted(counts.sum(axis=1))).all()
    assert len({tuple(c) for c in counts.tolist()}) == len(counts)


# -- pruning: one bound row per lead instead of every candidate, when the model never falls with a count ----
@pytest.fixture(scope="module")
def searched(workspace: Settings, definitions: Definitions, demo_leads: pd.DataFrame) -> dict[str, Any]:
    """The served LightGBM champion with every demo lead's encoded row, verdict and values; a tenth of
    the rows get a missing count, a tenth a few events more (so some leads pass, some get close)."""
    from serving.explain import explain
    from serving.mql import verdict
    from serving.scorer import Scorer
    from serving.topass import steps

    scorer = Scorer(workspace, definitions)
    scorer.refresh()
    champion = scorer.champion
    assert champion is not None
    bundle = champion.bundle
    frame = champion.online.get(demo_leads["lead_id"].astype(str).tolist())[bundle.feature_keys].reset_index(drop=True)
    counts = [bundle.feature_keys[j] for s in steps(definitions, bundle.feature_keys) for j in s.columns]
    rng = np.random.default_rng(3)
    rows = rng.permutation(len(frame))
    frame.loc[rows[:200], counts[0]] = np.nan
    frame.loc[rows[200:400], counts[-1]] = frame.loc[rows[200:400], counts[-1]].fillna(0) + 2
    exps = explain(bundle, definitions, frame)
    values = [{c["feature"]: c["value"] for c in e.contributions} for e in exps]
    verdicts = [verdict(definitions, e.score, v) for e, v in zip(exps, values, strict=True)]
    return {"bundle": bundle, "X": bundle.encoder.transform(frame), "verdicts": verdicts, "values": values}


def test_pruning_gives_exactly_the_full_search(searched: dict[str, Any], definitions: Definitions) -> None:
    from serving.topass import Rescore, _hopeful, to_pass

    bundle, X, verdicts, values = searched["bundle"], searched["X"], searched["verdicts"], searched["values"]
    pruned = to_pass(bundle, definitions, X, verdicts, values)
    full = to_pass(bundle, definitions, X, verdicts, values, prune=False)
    assert pruned == full
    found = [p for p in full if p is not None and p.changes]
    assert len(found) >= 10, "the data should hold leads a few events away from the threshold"
    # pruning did happen: most searched leads were settled by their bound row alone
    from serving.topass import _candidates, steps

    plan = steps(definitions, bundle.feature_keys)
    _, delta = _candidates(tuple(s.columns for s in plan), len(bundle.feature_keys), 3)
    search = [i for i, v in enumerate(verdicts) if not v.passed and all(c.met for c in v.criteria)]
    out: list[Any] = [None] * len(verdicts)
    left = _hopeful(bundle, definitions, X, search, delta, out, 3, Rescore(bundle, X, None, None))
    settled = [i for i in search if i not in set(left)]
    assert len(settled) > len(search) / 2 and len(left) >= len(found)
    assert all(out[i] is not None and out[i].changes == [] for i in settled)
    missing = np.isnan(X[search][:, plan[0].columns[0]])
    assert missing.any() and {s for s, m in zip(search, missing.tolist(), strict=True) if m} <= set(left)  # not comparable


def test_the_bound_row_is_above_every_candidate(searched: dict[str, Any], definitions: Definitions) -> None:
    """What pruning rests on: a lead's bound row is at or above each of its candidates in every column, and
    the served model, never falling with a count, scores it at least as high as each."""
    from serving.topass import _candidates, bound_rows, candidate_rows, steps

    bundle, X = searched["bundle"], searched["X"]
    plan = steps(definitions, bundle.feature_keys)
    _, delta = _candidates(tuple(s.columns for s in plan), len(bundle.feature_keys), 3)
    rows = X[:400]
    comparable, top = bound_rows(rows, delta)
    assert 0 < comparable.sum() < len(rows)  # the rows with a missing count are left out
    candidates = candidate_rows(rows[comparable], delta).reshape(len(top), len(delta), X.shape[1])
    same = np.isnan(candidates) & np.isnan(top[:, None, :])
    assert ((top[:, None, :] >= candidates) | same).all()
    raised = np.flatnonzero(delta.max(axis=0) > 0)
    assert np.array_equal(candidates.max(axis=1)[:, raised], top[:, raised])  # and no higher than some candidate
    assert bundle.never_falls_with(raised.tolist())
    scores = bundle.logit(candidates.reshape(-1, X.shape[1])).reshape(len(top), len(delta))
    assert (scores <= bundle.logit(top)[:, None]).all()
    assert (scores.max(axis=1) > bundle.logit(rows[comparable])).any()  # the counts do move these scores


def test_no_pruning_unless_the_model_is_known_never_to_fall(definitions: Definitions, searched: dict[str, Any]) -> None:
    from tests.serving.conftest import train_bundle

    bundle = searched["bundle"]
    frame = pd.DataFrame(searched["values"])[definitions.feature_keys]
    unconstrained = train_bundle(frame, definitions, np.arange(len(frame)) % 3 == 0)
    assert set(unconstrained.monotone_constraints) == {0} and not unconstrained.never_falls_with([0])
    assert bundle.never_falls_with([]) and any(c == 0 for c in bundle.monotone_constraints)
    unconstrained_col = bundle.monotone_constraints.index(0)
    assert not bundle.never_falls_with([unconstrained_col])
    flipped = dataclasses.replace(bundle, calib_a=-bundle.calib_a)
    assert not flipped.never_falls_with([])


def test_a_logistic_champion_is_pruned_too(searched: dict[str, Any], definitions: Definitions) -> None:
    """Fitted with the definitions' directions, a logistic regression never falls as a count rises: its
    search is pruned, with exactly the full search's answers; a count it was let fall with is not pruned."""
    from samepage.linear import fit_logreg_bundle
    from serving.explain import explain
    from serving.mql import verdict
    from serving.topass import Rescore, _candidates, _hopeful, steps, to_pass

    frame = pd.DataFrame(searched["values"])[definitions.feature_keys]
    lgb_scores = np.array([e.score for e in explain(searched["bundle"], definitions, frame)])
    y = (np.random.default_rng(5).random(len(frame)) < lgb_scores).astype(int)
    bundle = fit_logreg_bundle(definitions, frame, y)
    plan = steps(definitions, bundle.feature_keys)
    _, delta = _candidates(tuple(s.columns for s in plan), len(bundle.feature_keys), 3)
    raised = np.flatnonzero(delta.max(axis=0) > 0).tolist()
    assert bundle.never_falls_with(raised)
    assert not bundle.never_falls_with([bundle.encoder.categorical_indices[0]])
    exps = explain(bundle, definitions, frame)
    mql = definitions.mql.model_copy(update={"threshold": float(np.quantile([e.score for e in exps], 0.9))})
    defs = definitions.model_copy(update={"mql": mql})
    values = [{c["feature"]: c["value"] for c in e.contributions} for e in exps]
    verdicts = [verdict(defs, e.score, v) for e, v in zip(exps, values, strict=True)]
    X = bundle.encoder.transform(frame)
    full = to_pass(bundle, defs, X, verdicts, values, prune=False)
    assert to_pass(bundle, defs, X, verdicts, values) == full
    assert sum(1 for p in full if p is not None and p.changes) >= 10
    search = [i for i, v in enumerate(verdicts) if not v.passed and all(c.met for c in v.criteria)]
    out: list[Any] = [None] * len(verdicts)
    left = _hopeful(bundle, defs, X, search, delta, out, 3, Rescore(bundle, X, None, None))
    assert len(left) < len(search) and all(out[i] is not None for i in set(search) - set(left))  # some settled by their bound row
    falls = dataclasses.replace(bundle, coef=bundle.coef.copy())
    start = np.cumsum([0] + [s.width() for s in bundle.specs])
    falls.coef[start[raised[0]]] = -1.0
    assert not falls.never_falls_with(raised)


def test_the_constraints_are_read_back_from_a_saved_model(searched: dict[str, Any], tmp_path: Any) -> None:
    from samepage.bundle import Bundle

    bundle = searched["bundle"]
    again = Bundle.load(bundle.save(tmp_path / "bundle"))
    assert again.monotone_constraints == bundle.monotone_constraints and set(bundle.monotone_constraints) == {-1, 0, 1}
    assert again.never_falls_with([])
    linear = dataclasses.replace(bundle, booster=lgb.Booster(model_str=bundle.booster.model_to_string()))
    linear.booster.params["linear_tree"] = True  # a linear leaf may fall with a count whatever the split constraints
    assert not linear.never_falls_with([])


def test_the_staged_search_gives_exactly_the_full_search(definitions: Definitions, searched: dict[str, Any]) -> None:
    """A large search goes by number of steps (1, then 2, then 3 for the leads still without an answer);
    on a model that is not pruned (no constraints) and with a criterion on an actionable count, the
    answers equal every candidate scored at once, and they come from more than one stage."""
    from samepage.definitions import Criterion
    from serving.explain import explain
    from serving.mql import verdict
    from serving.topass import SMALL_SEARCH, to_pass
    from tests.serving.conftest import train_bundle

    frame = pd.DataFrame(searched["values"])[definitions.feature_keys]
    bundle = train_bundle(frame, definitions, np.arange(len(frame)) % 3 == 0)
    asked = Criterion(key="asked_for_demo", description="Asked for a demo", field="demo_requests_90d", min=1)
    # A threshold that some leads reach with one step, some with two or three, and some not at all.
    exps = explain(bundle, definitions, frame)
    threshold = float(np.quantile([e.score for e in exps], 0.9))
    for criteria in ([], [asked]):
        mql = definitions.mql.model_copy(update={"criteria": criteria, "threshold": threshold})
        defs = definitions.model_copy(update={"mql": mql})
        values = [{c["feature"]: c["value"] for c in e.contributions} for e in exps]
        verdicts = [verdict(defs, e.score, v) for e, v in zip(exps, values, strict=True)]
        X = bundle.encoder.transform(frame)
        assert sum(not v.passed for v in verdicts) * 119 >= SMALL_SEARCH  # large enough to be staged
        staged = to_pass(bundle, defs, X, verdicts, values)
        assert staged == to_pass(bundle, defs, X, verdicts, values, prune=False)
        events = [_events(definitions, p.changes) for p in staged if p is not None and p.changes]
        assert len(set(events)) >= 2, events  # answers of more than one stage
        assert any(p is not None and p.changes == [] for p in staged)


def _events(defs: Definitions, changes: list[dict[str, Any]]) -> int:
    """How many events a `to_pass` asks for (a pricing page view raises two counts by one)."""
    per_type: dict[str, int] = {}
    for c in changes:
        kind = defs.feature(c["feature"]).event_type or c["feature"]
        per_type[kind] = max(per_type.get(kind, 0), int(c["to"] or 0) - int(c["from"] or 0))
    return sum(per_type.values())


def test_the_search_rescores_only_the_trees_its_steps_reach(searched: dict[str, Any], definitions: Definitions) -> None:
    """The served champion's candidates are scored by the trees that read an actionable count alone (fewer
    than all of them), and the answers are those of scoring every candidate with the whole model."""
    from samepage.bundle import ModelBundle
    from serving.topass import _candidates, steps, to_pass

    class Whole(ModelBundle):
        def parts_reading(self, columns: Any) -> None:  # type: ignore[override]
            return None

    bundle, X, verdicts, values = searched["bundle"], searched["X"], searched["verdicts"], searched["values"]
    _, delta = _candidates(tuple(s.columns for s in steps(definitions, bundle.feature_keys)), len(bundle.feature_keys), 3)
    raised = np.flatnonzero(delta.max(axis=0) > 0).tolist()
    assert 0 < len(bundle.parts_reading(raised)) < bundle.booster.num_trees()
    whole = Whole(bundle.encoder, bundle.booster, bundle.calib_a, bundle.calib_b, bundle.meta, bundle.is_calibrated)
    for prune in (True, False):
        got = to_pass(bundle, definitions, X, verdicts, values, prune=prune)
        want = to_pass(whole, definitions, X, verdicts, values, prune=prune)
        assert [(g.changes, g.note) if g else None for g in got] == [(w.changes, w.note) if w else None for w in want]
        pairs = [(g.score_if, w.score_if) for g, w in zip(got, want, strict=True) if g and g.score_if is not None]
        assert len(pairs) >= 10 and all(w is not None and abs(g - w) < 1e-12 for g, w in pairs if g is not None)

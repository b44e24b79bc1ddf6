"""The funnel report's numbers on small hand-built stage histories whose answers are known."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from samepage.definitions import Definitions
from samepage.records import Feedback, RecordStore
from samepage.settings import Settings
from samepage.tables import CanonicalTables, empty_events, write_tables
from serving.report import PeriodError, build_report, load_report
from tests.conftest import make_lead, make_stage

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
T0 = pd.Timestamp("2026-03-02T09:00:00Z")
H = pd.Timedelta(hours=1)
D = pd.Timedelta(days=1)


def tables(leads: list[dict], stages: list[dict]) -> CanonicalTables:
    return CanonicalTables(leads=pd.DataFrame(leads), events=empty_events(), stages=pd.DataFrame(stages))


def lead_with(
    lead_id: str,
    path: list[tuple[str, pd.Timedelta]],
    created: pd.Timestamp = T0,
    source: str | None = "Webinar",
    reason: str | None = None,
) -> tuple[dict, list[dict]]:
    """A lead created at `created` and the stages it entered (offsets from creation)."""
    lead = make_lead(lead_id=lead_id, created_at=created, source=source)
    rows = [make_stage(lead_id=lead_id, stage="lead", occurred_at=created)]
    for stage, offset in path:
        rows.append(
            make_stage(
                lead_id=lead_id, stage=stage, occurred_at=created + offset, reason=reason if stage == "disqualified" else None
            )
        )
    return lead, rows


def build(specs: list[tuple[dict, list[dict]]], scores: dict[str, float] | None = None, **kw: object):
    leads = [s[0] for s in specs]
    stages = [r for s in specs for r in s[1]]
    t = tables(leads, stages)
    frame = pd.DataFrame({"lead_id": list((scores or {}).keys()), "score": list((scores or {}).values())})
    return t, frame, kw


def report_of(defs: Definitions, specs: list[tuple[dict, list[dict]]], scores: dict[str, float] | None = None, **kw: object):
    t, frame, kw = build(specs, scores, **kw)
    return build_report(defs, t, t.stages, frame, now=NOW, **kw)  # type: ignore[arg-type]


def test_funnel_counts_a_lead_at_every_stage_it_reached_or_passed(definitions: Definitions) -> None:
    specs = [
        lead_with("A", []),
        lead_with("B", [("mql", 2 * D)]),
        lead_with("C", [("mql", 2 * D), ("sal", 2 * D + 3 * H), ("sql", 10 * D)]),
        lead_with("D", [("sql", 5 * D)]),  # sales found it directly: it still passed MQL and SAL
        lead_with("E", [("mql", 1 * D), ("disqualified", 3 * D)], reason="no_budget"),
        lead_with("F", [("mql", 1 * D), ("sal", 1 * D + H), ("sql", 4 * D), ("opportunity", 9 * D), ("customer", 60 * D)]),
    ]
    rep = report_of(definitions, specs)
    counts = {s.key: s.leads for s in rep.funnel}
    assert [s.key for s in rep.funnel] == ["lead", "mql", "sal", "sql", "opportunity", "customer"]
    assert counts == {"lead": 6, "mql": 5, "sal": 3, "sql": 3, "opportunity": 1, "customer": 1}
    by = {s.key: s for s in rep.funnel}
    assert by["lead"].rate_from_previous is None
    assert by["mql"].rate_from_previous == pytest.approx(5 / 6)
    assert by["sql"].rate_from_previous == pytest.approx(3 / 3)
    assert by["opportunity"].rate_from_first == pytest.approx(1 / 6)
    assert rep.leads == 6


def test_median_time_between_consecutive_stages(definitions: Definitions) -> None:
    specs = [
        lead_with("A", [("mql", 1 * D), ("sal", 1 * D + 2 * H)]),
        lead_with("B", [("mql", 3 * D), ("sal", 3 * D + 4 * H)]),
        lead_with("C", [("mql", 5 * D), ("sal", 5 * D + 30 * H)]),
        lead_with("D", [("sql", 2 * D)]),  # no MQL recorded: it has no lead→MQL time
    ]
    rep = report_of(definitions, specs)
    times = {(t.from_stage, t.to_stage): t for t in rep.stage_times}
    assert times[("lead", "mql")].leads == 3
    assert times[("lead", "mql")].median_hours == pytest.approx(3 * 24)
    assert times[("mql", "sal")].median_hours == pytest.approx(4)
    assert times[("sql", "opportunity")].leads == 0 and times[("sql", "opportunity")].median_hours is None


def test_sla_splits_mqls_into_on_time_late_never_and_pending(definitions: Definitions) -> None:
    hours = definitions.sla.mql_follow_up_hours
    recent = pd.Timestamp(NOW) - 2 * D
    specs = [
        lead_with("ONTIME", [("mql", D), ("sal", D + (hours - 1) * H)]),
        lead_with("LATE", [("mql", D), ("disqualified", D + (hours + 5) * H)], reason="bad_timing"),
        lead_with("NEVER", [("mql", D)]),
        lead_with("PENDING", [("mql", 2 * D - 2 * H)], created=recent),  # MQL two hours before NOW
        lead_with("NOMQL", [("sql", D)]),
    ]
    sla = report_of(definitions, specs).sla
    assert (sla.mqls, sla.within_sla, sla.late, sla.not_followed_up, sla.pending) == (4, 1, 1, 1, 1)
    assert sla.missed == 2
    assert sla.missed_rate == pytest.approx(2 / 3)
    assert sla.median_follow_up_hours == pytest.approx(((hours - 1) + (hours + 5)) / 2)


def test_disqualification_reasons_by_source_use_each_leads_latest_reason(definitions: Definitions) -> None:
    specs = [
        lead_with("W1", [("disqualified", D)], source="Webinar", reason="student"),
        lead_with("W2", [("disqualified", D)], source="Webinar", reason="no_budget"),
        lead_with("W3", [], source="Webinar"),
        lead_with("P1", [("disqualified", D)], source="Paid Search", reason="no_budget"),
        lead_with("X1", [("disqualified", D)], source=None, reason="duplicate"),
    ]
    # W1 was disqualified again later, for another reason: the latest one counts, once.
    specs[0][1].append(make_stage(lead_id="W1", stage="disqualified", occurred_at=T0 + 5 * D, reason="not_icp"))
    dq = report_of(definitions, specs).disqualifications
    assert [r.key for r in dq.reasons] == [r.key for r in definitions.stage("disqualified").reasons]
    rows = {r.source: r for r in dq.by_source}
    assert rows["Webinar"].leads == 3 and rows["Webinar"].disqualified == 2
    assert rows["Webinar"].by_reason["not_icp"] == 1 and rows["Webinar"].by_reason["student"] == 0
    assert rows["Paid Search"].by_reason["no_budget"] == 1
    assert rows["(no source)"].by_reason["duplicate"] == 1
    assert dq.total == 4
    assert dq.by_source[0].source == "Webinar"  # most disqualifications first


def test_period_selects_leads_by_their_as_of_day_inclusive(definitions: Definitions) -> None:
    specs = [
        lead_with("MAR1", [("mql", D)], created=pd.Timestamp("2026-03-01T23:59:00Z")),
        lead_with("MAR31", [], created=pd.Timestamp("2026-03-31T23:59:59Z")),
        lead_with("APR1", [("sql", D)], created=pd.Timestamp("2026-04-01T00:00:00Z")),
        lead_with("FEB", [], created=pd.Timestamp("2026-02-28T12:00:00Z")),
    ]
    rep = report_of(definitions, specs, start=date(2026, 3, 1), end=date(2026, 3, 31))
    assert rep.leads == 2
    assert {s.key: s.leads for s in rep.funnel}["mql"] == 1
    assert rep.period.start == date(2026, 3, 1) and rep.period.end == date(2026, 3, 31)
    everything = report_of(definitions, specs)
    assert everything.leads == 4 and everything.period.start == date(2026, 2, 28)
    with pytest.raises(PeriodError, match="start"):
        report_of(definitions, specs, start=date(2026, 4, 2), end=date(2026, 4, 1))


def test_calibration_compares_band_means_with_outcomes_of_closed_windows(definitions: Definitions) -> None:
    window = definitions.label.window_days * D
    old = pd.Timestamp(NOW) - window - 10 * D  # window closed
    young = pd.Timestamp(NOW) - 20 * D  # window still open
    specs = [
        lead_with("P1", [("sql", 30 * D)], created=old),
        lead_with("P2", [("opportunity", 40 * D)], created=old),  # a later stage counts as reaching SQL
        lead_with("N1", [], created=old),
        lead_with("N2", [("sql", window + 2 * D)], created=old),  # too late: outside the window
        lead_with("OPEN", [("sql", 5 * D)], created=young),  # left out whatever it reached
        lead_with("UNSCORED", [("sql", 5 * D)], created=old),
    ]
    scores = {"P1": 0.82, "P2": 0.75, "N1": 0.12, "N2": 0.35, "OPEN": 0.9}
    cal = report_of(definitions, specs, scores).calibration
    assert (cal.scored, cal.with_outcome, cal.open_window, cal.positives) == (5, 4, 1, 2)
    y, p = [1, 1, 0, 0], [0.82, 0.75, 0.12, 0.35]
    assert cal.roc_auc == pytest.approx(roc_auc_score(y, p)) and cal.roc_auc == 1.0
    assert cal.brier == pytest.approx(sum((a - b) ** 2 for a, b in zip(p, y, strict=True)) / 4)
    bands = {(round(b.low, 1)): b for b in cal.bands}
    assert len(cal.bands) == 10
    assert bands[0.8].leads == 1 and bands[0.8].actual == 1.0 and bands[0.8].predicted == pytest.approx(0.82)
    assert bands[0.3].leads == 1 and bands[0.3].actual == 0.0
    assert bands[0.5].leads == 0 and bands[0.5].actual is None


def test_load_report_sees_feedback_recorded_in_the_store(settings: Settings, definitions: Definitions) -> None:
    specs = [lead_with("A", [("mql", D)]), lead_with("B", [("mql", D)], source="Referral")]
    t, _, _ = build(specs)
    write_tables(settings.data_dir, t)
    store = RecordStore.from_settings(settings)
    try:
        before = load_report(settings, definitions, store, now=NOW)
        store.add_feedback(
            Feedback(lead_id="B", stage="disqualified", occurred_at=T0 + 2 * D, reason="competitor", event_id="e1")
        )
        after = load_report(settings, definitions, store, now=NOW)
    finally:
        store.close()
    assert before.disqualifications.total == 0
    rows = {r.source: r for r in after.disqualifications.by_source}
    assert rows["Referral"].by_reason["competitor"] == 1
    assert after.sla.within_sla == before.sla.within_sla + 1


def test_period_outside_what_timestamps_hold_is_a_period_error(definitions: Definitions) -> None:
    specs = [lead_with("A", [])]
    with pytest.raises(PeriodError, match="start: 0001-01-01"):
        report_of(definitions, specs, start=date(1, 1, 1))
    with pytest.raises(PeriodError, match="end: 9999-12-31"):
        report_of(definitions, specs, end=date(9999, 12, 31))


def test_a_period_without_leads_reports_zeros_not_errors(definitions: Definitions) -> None:
    specs = [lead_with("A", [("mql", D), ("disqualified", 2 * D)], reason="no_budget")]
    rep = report_of(definitions, specs, {"A": 0.4}, start=date(2030, 1, 1), end=date(2030, 1, 31))
    assert rep.leads == 0
    assert all(s.leads == 0 for s in rep.funnel) and rep.funnel[1].rate_from_previous is None
    assert all(t.leads == 0 and t.median_hours is None for t in rep.stage_times)
    assert (rep.sla.mqls, rep.sla.missed_rate) == (0, None)
    assert rep.disqualifications.total == 0 and rep.disqualifications.by_source == []
    assert (rep.calibration.scored, rep.calibration.roc_auc, rep.calibration.brier) == (0, None, None)


STAGE_CHOICES = ["mql", "sal", "sql", "opportunity", "customer", "disqualified", "recycled", "lost"]


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[dict, list[dict]]], dict[str, float], date | None, date | None]:
    specs, scores = [], {}
    for i in range(draw(st.integers(1, 8))):  # a canonical leads table is never empty
        created = pd.Timestamp("2025-06-01T00:00:00Z") + draw(st.integers(0, 500)) * D
        path = [(s, draw(st.integers(0, 400)) * H) for s in draw(st.lists(st.sampled_from(STAGE_CHOICES), max_size=5))]
        source = draw(st.sampled_from(["Webinar", "Referral", None]))
        spec = lead_with(f"L{i}", path, created=created, source=source, reason="no_budget")
        for row in spec[1]:
            if row["stage"] == "lost":
                row["reason"] = "price"
        specs.append(spec)
        if draw(st.booleans()):
            scores[f"L{i}"] = draw(st.floats(0.0, 1.0))
    start = draw(st.none() | st.dates(date(2025, 1, 1), date(2026, 12, 31)))
    end = draw(st.none() | st.dates(start or date(2025, 1, 1), date(2027, 6, 30)))
    return specs, scores, start, end


def test_calibration_leaves_out_leads_already_at_the_target_as_training_does(definitions: Definitions) -> None:
    old = pd.Timestamp(NOW) - definitions.label.window_days * D - 10 * D
    specs = [
        lead_with("P1", [("sql", 30 * D)], created=old),
        lead_with("N1", [], created=old),
        lead_with("EARLY", [("sql", -5 * D)], created=old),  # an SQL before it ever became a Lead
    ]
    cal = report_of(definitions, specs, {"P1": 0.8, "N1": 0.2, "EARLY": 0.9}).calibration
    assert (cal.scored, cal.with_outcome, cal.already_at_target, cal.positives) == (3, 2, 1, 1)
    assert cal.actual_rate == 0.5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_report_invariants_hold_for_any_history(definitions: Definitions, case: tuple) -> None:
    specs, scores, start, end = case
    rep = report_of(definitions, specs, scores, start=start, end=end)
    counts = [s.leads for s in rep.funnel]
    assert counts[0] == rep.leads and counts == sorted(counts, reverse=True)
    sla = rep.sla
    assert sla.within_sla + sla.late + sla.not_followed_up + sla.pending == sla.mqls <= counts[1]
    dq = rep.disqualifications
    assert dq.total == sum(r.disqualified for r in dq.by_source) and sum(r.leads for r in dq.by_source) == rep.leads
    cal = rep.calibration
    assert cal.with_outcome + cal.open_window + cal.already_at_target == cal.scored <= rep.leads
    assert sum(b.leads for b in cal.bands) == cal.with_outcome and cal.positives <= cal.with_outcome
    assert all(t.median_hours is None or t.median_hours >= 0 for t in rep.stage_times)


def _report_with_times(defs: Definitions, specs: list, scores: dict[str, tuple[float, pd.Timestamp]], **kw: object):
    t, _, _ = build(specs)
    frame = pd.DataFrame(
        {"lead_id": list(scores), "score": [s for s, _ in scores.values()], "scored_at": [w for _, w in scores.values()]}
    )
    return build_report(defs, t, t.stages, frame, now=NOW, **kw)  # type: ignore[arg-type]


def test_a_live_score_is_judged_on_the_window_after_it_was_made(definitions: Definitions) -> None:
    window = definitions.label.window_days * D
    old = pd.Timestamp(NOW) - window - 100 * D
    specs = [
        lead_with("EARLY", [("sql", 30 * D)], created=old),  # scored on day 1: reached SQL within the window after
        lead_with("AFTER", [("sql", 30 * D)], created=old),  # scored after it reached SQL: predicted nothing
        lead_with("TODAY", [], created=old),  # scored today: its window after scoring is open
    ]
    scores = {"EARLY": (0.7, old + D), "AFTER": (0.9, old + 60 * D), "TODAY": (0.1, pd.Timestamp(NOW))}
    cal = _report_with_times(definitions, specs, scores).calibration
    assert (cal.scored, cal.with_outcome, cal.already_at_target, cal.open_window, cal.positives) == (3, 1, 1, 1, 1)
    assert cal.source == "live" and "window after scoring" in cal.source_note


def test_without_a_live_outcome_the_calibration_shows_the_champions_out_of_time_predictions(definitions: Definitions) -> None:
    from samepage.holdout import Holdout

    p = [0.05, 0.15, 0.25, 0.62, 0.81, 0.33]
    y = [0, 0, 1, 1, 1, 0]
    holdout = Holdout(pd.DataFrame({"score": p, "label": y}), 40.0, "given", "synthetic", "run1", model_version="4")
    asked: list[bool] = []

    def loader() -> Holdout:
        asked.append(True)
        return holdout

    specs = [lead_with("NEW", [], created=pd.Timestamp(NOW) - 5 * D)]
    cal = _report_with_times(definitions, specs, {"NEW": (0.4, pd.Timestamp(NOW))}, out_of_time=loader).calibration
    assert cal.source == "out_of_time" and cal.with_outcome == 6 and cal.positives == 3
    assert cal.roc_auc == pytest.approx(roc_auc_score(y, p))
    assert "champion v4's out-of-time predictions from training" in cal.source_note and "still open" in cal.source_note
    window = definitions.label.window_days * D
    old = pd.Timestamp(NOW) - window - 10 * D
    asked.clear()
    live = _report_with_times(
        definitions, [lead_with("OLD", [("sql", 3 * D)], created=old)], {"OLD": (0.6, old)}, out_of_time=loader
    ).calibration
    assert live.source == "live" and live.with_outcome == 1 and asked == []  # not even read

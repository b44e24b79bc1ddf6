"""The demo generator: deterministic, canonical in shape, and realistic enough to learn from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from samepage.definitions import Definitions, EventType
from samepage.demo import DEFAULT_END, generate_demo, summarize, write_demo
from samepage.settings import Settings
from samepage.tables import LEAD_KEYS, WELL_KNOWN_ATTRIBUTES, CanonicalTables, empty_events, empty_stages, read_tables
from tests.conftest import make_lead, make_stage

N = 2_000


@pytest.fixture(scope="module")
def demo(definitions: Definitions) -> CanonicalTables:
    return generate_demo(definitions, n_leads=N, seed=7)


def _as_of(defs: Definitions, tables: CanonicalTables) -> pd.Series:
    stages = tables.stages
    first = stages[stages["stage"] == defs.label.as_of_stage].groupby("lead_id")["occurred_at"].min()
    return first.reindex(tables.leads["lead_id"]).fillna(tables.leads.set_index("lead_id")["created_at"])


def _labels(defs: Definitions, tables: CanonicalTables) -> pd.Series:
    """1/0 per lead whose label window closed before the data's end (as the definitions say)."""
    as_of = _as_of(defs, tables)
    window = pd.Timedelta(days=defs.label.window_days)
    hits = tables.stages[tables.stages["stage"].isin(defs.stages_at_or_after(defs.label.target_stage))]
    hits = hits.assign(t0=as_of.reindex(hits["lead_id"]).to_numpy())
    positive = set(hits.loc[(hits["occurred_at"] >= hits["t0"]) & (hits["occurred_at"] <= hits["t0"] + window), "lead_id"])
    closed = as_of[as_of + window <= DEFAULT_END]
    return pd.Series(closed.index.isin(list(positive)).astype(int), index=closed.index)


# -- determinism -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables(definitions: Definitions, demo: CanonicalTables) -> None:
    again = generate_demo(definitions, n_leads=N, seed=7)
    for name in ("leads", "events", "stages"):
        pd.testing.assert_frame_equal(getattr(demo, name), getattr(again, name))


def test_another_seed_gives_other_tables(definitions: Definitions, demo: CanonicalTables) -> None:
    other = generate_demo(definitions, n_leads=N, seed=8)
    assert not demo.leads.equals(other.leads)
    assert not demo.events.equals(other.events)
    assert len(other.leads) == N


# -- shape -----------------------------------------------------------------------------------------


def test_frames_have_the_canonical_columns_and_dtypes(demo: CanonicalTables) -> None:
    assert list(demo.leads.columns) == LEAD_KEYS + WELL_KNOWN_ATTRIBUTES
    assert demo.leads["lead_id"].dtype == "string"
    assert demo.leads["lead_id"].is_unique and len(demo.leads) == N
    assert str(demo.leads["created_at"].dtype) == "datetime64[ns, UTC]"
    for col in ("employees", "annual_revenue"):
        assert demo.leads[col].dtype == "float64"
    pd.testing.assert_series_equal(demo.events.dtypes, empty_events().dtypes)
    pd.testing.assert_series_equal(demo.stages.dtypes, empty_stages().dtypes)


def test_stage_keys_and_reasons_follow_the_definitions(definitions: Definitions, demo: CanonicalTables) -> None:
    stages = demo.stages
    assert set(stages["stage"]) <= {s.key for s in definitions.stages}
    for stage in definitions.stages:
        rows = stages[stages["stage"] == stage.key]
        if stage.reasons:
            assert rows["reason"].notna().all(), f"{stage.key} rows without a reason"
            assert set(rows["reason"]) <= {r.key for r in stage.reasons}
        else:
            assert rows["reason"].isna().all(), f"{stage.key} rows carry a reason"


def test_every_lead_enters_the_as_of_stage_right_after_creation(
    definitions: Definitions, demo: CanonicalTables
) -> None:
    first = demo.stages[demo.stages["stage"] == definitions.label.as_of_stage].groupby("lead_id")["occurred_at"].min()
    created = demo.leads.set_index("lead_id")["created_at"]
    assert set(first.index) == set(created.index)
    gap = first.reindex(created.index) - created
    assert (gap >= pd.Timedelta(0)).all() and (gap <= pd.Timedelta(hours=1)).all()


def test_funnel_stages_happen_in_funnel_order(definitions: Definitions, demo: CanonicalTables) -> None:
    firsts = demo.stages.pivot_table(index="lead_id", columns="stage", values="occurred_at", aggfunc="min")
    funnel = [s.key for s in definitions.funnel if s.key in firsts.columns]
    assert len(funnel) >= 5
    for earlier, later in zip(funnel, funnel[1:], strict=False):
        both = firsts[[earlier, later]].dropna()
        assert (both[earlier] <= both[later]).all(), f"{later} before {earlier}"


def test_events_and_stages_belong_to_leads_and_stay_in_range(
    definitions: Definitions, demo: CanonicalTables
) -> None:
    ids = set(demo.leads["lead_id"])
    assert set(demo.events["lead_id"]) <= ids and set(demo.stages["lead_id"]) <= ids
    assert set(demo.events["type"]) <= {e.key for e in definitions.event_types}
    assert set(demo.events["type"]) == {e.key for e in definitions.event_types}  # every type shows up
    created = demo.leads.set_index("lead_id")["created_at"]
    for frame, earliest in ((demo.events, pd.Timedelta(days=125)), (demo.stages, pd.Timedelta(0))):
        born = created.reindex(frame["lead_id"]).to_numpy()
        assert (frame["occurred_at"].to_numpy() >= born - earliest).all()
        assert (frame["occurred_at"] <= DEFAULT_END).all()
    span = created.max() - created.min()
    assert pd.Timedelta(days=400) <= span <= pd.Timedelta(days=550)


def test_some_engagement_comes_before_the_as_of_time(definitions: Definitions, demo: CanonicalTables) -> None:
    as_of = _as_of(definitions, demo)
    before = demo.events["occurred_at"].to_numpy() < as_of.reindex(demo.events["lead_id"]).to_numpy()
    share_with_history = demo.events.loc[before, "lead_id"].nunique() / N
    assert 0.5 < share_with_history < 1.0


def test_crm_fields_have_some_gaps_but_not_many(demo: CanonicalTables) -> None:
    for col in ("industry", "employees", "annual_revenue", "country", "job_title", "seniority", "department"):
        missing = demo.leads[col].isna().mean()
        assert 0.0 < missing < 0.25, f"{col}: {missing:.1%} missing"


def test_reads_the_icp_from_the_definitions(definitions: Definitions) -> None:
    icp = definitions.icp.model_copy(update={"industries": ["Aerospace"], "countries": ["Iceland"]})
    tables = generate_demo(definitions.model_copy(update={"icp": icp}), n_leads=500, seed=1)
    assert (tables.leads["industry"] == "Aerospace").mean() > 0.3
    assert (tables.leads["country"] == "Iceland").mean() > 0.3


def test_event_types_come_from_the_definitions(definitions: Definitions) -> None:
    """A type the definitions add gets generic engagement; a type they drop is never emitted."""
    kept = [e for e in definitions.event_types if e.key != "trial_request"]
    chat = EventType(key="chat_message", label="chat message", channel="web")
    tables = generate_demo(definitions.model_copy(update={"event_types": [*kept, chat]}), n_leads=500, seed=1)
    assert set(tables.events["type"]) == {e.key for e in kept} | {"chat_message"}


def test_no_leads_gives_empty_canonical_tables(definitions: Definitions) -> None:
    tables = generate_demo(definitions, n_leads=0)
    assert len(tables.leads) == len(tables.events) == len(tables.stages) == 0
    assert list(tables.leads.columns[:2]) == LEAD_KEYS
    with pytest.raises(ValueError, match="n_leads"):
        generate_demo(definitions, n_leads=-1)


def test_end_bounds_every_timestamp(definitions: Definitions) -> None:
    end = pd.Timestamp("2025-03-01T00:00Z")
    tables = generate_demo(definitions, n_leads=300, seed=2, end=end)
    for frame, col in ((tables.leads, "created_at"), (tables.events, "occurred_at"), (tables.stages, "occurred_at")):
        assert frame[col].max() <= end


# -- realism ---------------------------------------------------------------------------------------


def test_sql_rate_is_realistic(definitions: Definitions, demo: CanonicalTables) -> None:
    labels = _labels(definitions, demo)
    assert len(labels) > N // 3
    assert 0.15 <= labels.mean() <= 0.30
    summary = summarize(definitions, demo, seed=7, end=DEFAULT_END)
    assert summary.closed_windows == len(labels)
    assert summary.sql_rate == pytest.approx(labels.mean())


def test_summary_rate_leaves_out_leads_already_past_the_target_like_training(definitions: Definitions) -> None:
    """A lead at the target before its as-of time has nothing left to predict: not a negative, not counted."""
    t0 = pd.Timestamp("2025-01-06T10:00:00Z")
    target, as_of_stage = definitions.label.target_stage, definitions.label.as_of_stage
    leads = pd.DataFrame([make_lead(lead_id="A", created_at=t0), make_lead(lead_id="B", created_at=t0),
                          make_lead(lead_id="C", created_at=t0)])  # fmt: skip
    stages = pd.DataFrame(
        [
            make_stage(lead_id="A", stage=as_of_stage, occurred_at=t0),
            make_stage(lead_id="A", stage=target, occurred_at=t0 + pd.Timedelta(days=5)),  # positive
            make_stage(lead_id="B", stage=as_of_stage, occurred_at=t0),  # negative
            make_stage(lead_id="C", stage=target, occurred_at=t0),  # already there ...
            make_stage(lead_id="C", stage=as_of_stage, occurred_at=t0 + pd.Timedelta(days=10)),  # ... before its as-of
        ]
    )
    summary = summarize(definitions, CanonicalTables(leads, empty_events(), stages), seed=0, end=DEFAULT_END)
    assert (summary.closed_windows, summary.sql_rate) == (2, 0.5)


def test_students_and_competitors_are_mostly_disqualified_with_the_matching_reason(
    definitions: Definitions, demo: CanonicalTables
) -> None:
    dq = demo.stages[demo.stages["stage"] == "disqualified"]
    for column, value, reason in (("seniority", "Student", "student"), ("industry", "Competitor", "competitor")):
        who = demo.leads.loc[demo.leads[column] == value, "lead_id"]
        assert len(who) >= 20
        share = who.isin(dq.loc[dq["reason"] == reason, "lead_id"]).mean()
        assert share > 0.7, f"{value}: only {share:.0%} disqualified as {reason}"
        # and the reason is not handed to others
        assert not dq.loc[dq["reason"] == reason, "lead_id"].isin(
            demo.leads.loc[demo.leads[column].notna() & (demo.leads[column] != value), "lead_id"]
        ).any()


def test_demo_requesters_convert_more(definitions: Definitions, demo: CanonicalTables) -> None:
    labels = _labels(definitions, demo)
    as_of = _as_of(definitions, demo)
    demos = demo.events[demo.events["type"] == "demo_request"]
    early = demos.loc[demos["occurred_at"].to_numpy() <= as_of.reindex(demos["lead_id"]).to_numpy(), "lead_id"]
    asked = labels.index.isin(early.unique())
    assert asked.sum() >= 30
    assert labels[asked].mean() > labels[~asked].mean() + 0.15


def test_engagement_carries_signal_but_not_the_answer(definitions: Definitions, demo: CanonicalTables) -> None:
    """Pricing views before the as-of time: more of them, more SQLs, yet plenty of exceptions."""
    labels = _labels(definitions, demo)
    as_of = _as_of(definitions, demo)
    ev = demo.events[demo.events["type"] == "pricing_page_view"]
    ev = ev[ev["occurred_at"].to_numpy() <= as_of.reindex(ev["lead_id"]).to_numpy()]
    views = ev.groupby("lead_id").size().reindex(labels.index).fillna(0)
    hi, lo = labels[views >= 1], labels[views == 0]
    assert hi.mean() > lo.mean() + 0.05
    assert 0.1 < hi.mean() < 0.8 and lo.mean() > 0.03


# -- writing ---------------------------------------------------------------------------------------


def test_write_demo_replaces_the_workspace_data(definitions: Definitions, settings: Settings) -> None:
    summary = write_demo(settings, definitions, n_leads=400, seed=3)
    tables = read_tables(settings.data_dir)
    assert summary.leads == len(tables.leads) == 400
    assert summary.events == len(tables.events) and summary.stages == len(tables.stages)
    assert summary.created_from == tables.leads["created_at"].min()
    assert 0.0 < summary.sql_rate < 1.0
    expected = generate_demo(definitions, n_leads=400, seed=3)
    pd.testing.assert_frame_equal(tables.events, expected.events)
    write_demo(settings, definitions, n_leads=100, seed=4)
    assert len(read_tables(settings.data_dir).leads) == 100
    assert np.isclose(summary.sql_rate, summarize(definitions, expected, 3, DEFAULT_END).sql_rate)


def test_chunks_join_into_one_consistent_set(definitions: Definitions) -> None:
    """Several blocks of leads: ids stay unique and dense, every block is canonical on its own."""
    from samepage.demo import iter_demo_chunks

    chunks = list(iter_demo_chunks(definitions, n_leads=700, seed=5, chunk_leads=300))
    assert [len(c.leads) for c in chunks] == [300, 300, 100]
    for c in chunks:
        assert set(c.events["lead_id"]) <= set(c.leads["lead_id"])
        assert set(c.stages["lead_id"]) <= set(c.leads["lead_id"])
    whole = generate_demo(definitions, n_leads=700, seed=5, chunk_leads=300)
    assert whole.leads["lead_id"].is_unique
    assert list(whole.leads["lead_id"]) == [f"L{i:06d}" for i in range(700)]
    pd.testing.assert_frame_equal(whole.events.iloc[: len(chunks[0].events)], chunks[0].events)
    assert whole.events.index.is_unique and whole.stages.index.is_unique

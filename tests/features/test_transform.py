"""The pandas transform: change-point rows must answer "count at time t" exactly for any t."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.transform import (
    CREATED_AT,
    LAST_ACTIVITY_AT,
    TIMESTAMP,
    attribute_rows,
    engagement_chunks,
    engagement_keys,
    engagement_rows,
    write_sources,
)
from samepage.definitions import Definitions, parse_definitions
from samepage.tables import CanonicalTables, empty_events, empty_stages
from tests.conftest import make_event, make_lead

T0 = pd.Timestamp("2026-03-01T12:00:00Z")


def value_at(rows: pd.DataFrame, lead_id: str, t: pd.Timestamp, column: str) -> float:
    """What Feast answers point-in-time: the lead's latest row at or before t."""
    mine = rows[(rows["lead_id"] == lead_id) & (rows[TIMESTAMP] <= t)]
    if mine.empty:
        return 0.0
    return float(mine.sort_values(TIMESTAMP).iloc[-1][column])


def brute_count(events: pd.DataFrame, lead_id: str, t: pd.Timestamp, types: set[str], days: int) -> int:
    mine = events[(events["lead_id"] == lead_id) & events["type"].isin(types)]
    when = mine["occurred_at"]
    return int(((when <= t) & (when > t - pd.Timedelta(days=days))).sum())


def test_counts_match_a_brute_force_count_at_random_times(definitions: Definitions) -> None:
    rng = np.random.default_rng(7)
    types = [e.key for e in definitions.event_types]
    n = 400
    events = pd.DataFrame(
        {
            "lead_id": rng.choice(["A", "B", "C"], n),
            "occurred_at": T0 + pd.to_timedelta(rng.integers(0, 200 * 86_400, n), unit="s"),
            "type": rng.choice(types, n),
            "value": np.nan,
        }
    )
    rows = engagement_rows(events, definitions)
    channel_of = {e.key: e.channel for e in definitions.event_types}
    for t in T0 + pd.to_timedelta(rng.integers(0, 260 * 86_400, 25), unit="s"):
        for lead in ("A", "B", "C"):
            for f in definitions.features:
                if f.kind == "event_count":
                    expected = brute_count(events, lead, t, {str(f.event_type)}, int(f.window_days or 0))
                    assert value_at(rows, lead, t, f.key) == expected, (f.key, lead, t)
                elif f.kind == "distinct_channels":
                    mine = events[
                        (events["lead_id"] == lead)
                        & (events["occurred_at"] <= t)
                        & (events["occurred_at"] > t - pd.Timedelta(days=int(f.window_days or 0)))
                    ]
                    assert value_at(rows, lead, t, f.key) == mine["type"].map(channel_of).nunique()
            past = events[(events["lead_id"] == lead) & (events["occurred_at"] <= t)]
            latest = rows[(rows["lead_id"] == lead) & (rows[TIMESTAMP] <= t)]
            if past.empty:
                assert latest.empty or latest[LAST_ACTIVITY_AT].isna().all()
            else:
                assert latest.sort_values(TIMESTAMP).iloc[-1][LAST_ACTIVITY_AT] == past["occurred_at"].max()


def test_chunks_of_leads_give_the_same_rows(definitions: Definitions) -> None:
    rng = np.random.default_rng(3)
    n = 300
    events = pd.DataFrame(
        {
            "lead_id": rng.choice([f"L{i}" for i in range(7)], n),
            "occurred_at": T0 + pd.to_timedelta(rng.integers(0, 120 * 86_400, n), unit="s"),
            "type": rng.choice([e.key for e in definitions.event_types], n),
            "value": np.nan,
        }
    )
    whole = engagement_rows(events, definitions)
    parts = list(engagement_chunks(events, definitions, leads_per_chunk=2))
    assert len(parts) == 4
    pieces = pd.concat(parts, ignore_index=True).astype({"lead_id": object})
    pd.testing.assert_frame_equal(pieces, whole)


def test_window_edge_one_second_decides(definitions: Definitions) -> None:
    as_of = T0 + pd.Timedelta(days=60)
    events = pd.DataFrame(
        [
            make_event(lead_id="A", occurred_at=as_of - pd.Timedelta(days=30, seconds=1)),
            make_event(lead_id="B", occurred_at=as_of - pd.Timedelta(days=30) + pd.Timedelta(seconds=1)),
        ]
    )
    rows = engagement_rows(events, definitions)
    assert value_at(rows, "A", as_of, "page_views_30d") == 0
    assert value_at(rows, "A", as_of, "page_views_90d") == 1
    assert value_at(rows, "B", as_of, "page_views_30d") == 1


def test_an_event_is_never_in_a_row_dated_before_it(definitions: Definitions) -> None:
    at = pd.Timestamp("2026-03-01T12:00:00.250Z")  # sub-second: rounded up, never down
    rows = engagement_rows(pd.DataFrame([make_event(lead_id="A", occurred_at=at)]), definitions)
    assert value_at(rows, "A", at - pd.Timedelta(milliseconds=1), "page_views_7d") == 0
    first = rows.sort_values(TIMESTAMP).iloc[0]
    assert first[TIMESTAMP] >= at and first["page_views_7d"] == 1


def test_rows_are_unique_per_lead_and_time(definitions: Definitions) -> None:
    same = pd.Timestamp("2026-03-02T08:00:00Z")
    events = pd.DataFrame(
        [make_event(occurred_at=same), make_event(occurred_at=same, type="email_open"), make_event(occurred_at=same)]
    )
    rows = engagement_rows(events, definitions)
    assert not rows.duplicated(["lead_id", TIMESTAMP]).any()
    assert value_at(rows, "L-1", same, "page_views_7d") == 2
    assert value_at(rows, "L-1", same, "channels_90d") == 2


def test_events_of_unknown_types_only_mark_activity(definitions: Definitions) -> None:
    rows = engagement_rows(pd.DataFrame([make_event(type="chat_message")]), definitions)
    assert len(rows) == 1
    assert rows[engagement_keys(definitions)].sum().sum() == 0
    assert rows[LAST_ACTIVITY_AT].iloc[0] == make_event()["occurred_at"]


def test_no_events_gives_an_empty_typed_source(definitions: Definitions) -> None:
    rows = engagement_rows(empty_events(), definitions)
    assert rows.empty
    assert list(rows.columns) == ["lead_id", TIMESTAMP, *engagement_keys(definitions), LAST_ACTIVITY_AT]


def test_attribute_rows_keep_every_column_typed(definitions: Definitions) -> None:
    leads = pd.DataFrame([make_lead(), make_lead(lead_id="L-2", employees=None, industry=None, extra_score=3)])
    frame, kinds = attribute_rows(leads, definitions)
    assert frame[TIMESTAMP].equals(frame[CREATED_AT])
    assert kinds["employees"] == "number" and kinds["industry"] == "category" and kinds["job_title"] == "category"
    assert kinds["extra_score"] == "number" and kinds[CREATED_AT] == "timestamp"
    assert frame["employees"].dtype == "float64" and np.isnan(frame["employees"].iloc[1])
    assert frame["industry"].iloc[1] is None


def test_columns_features_need_are_added_when_the_data_lacks_them(definitions: Definitions) -> None:
    leads = pd.DataFrame([make_lead()]).drop(columns=["seniority", "employees"])
    frame, kinds = attribute_rows(leads, definitions)
    assert kinds["seniority"] == "category" and frame["seniority"].iloc[0] is None
    assert kinds["employees"] == "number" and np.isnan(frame["employees"].iloc[0])


def test_a_bad_number_names_column_and_row(definitions: Definitions) -> None:
    leads = pd.DataFrame([make_lead(), make_lead(lead_id="L-2", employees="many")])
    with pytest.raises(ValueError, match=r"'employees', row 2: 'many' is not a number"):
        attribute_rows(leads, definitions)


@pytest.mark.parametrize(
    ("lead", "message"),
    [
        ({"lead_id": "L-1"}, r"'lead_id', row 2: 'L-1' is a duplicate"),
        ({"lead_id": None}, r"'lead_id', row 2: .* is missing"),
        ({"created_at": "soon"}, r"'created_at', row 2: 'soon' is not a time"),
    ],
)
def test_bad_lead_keys_name_column_and_row(definitions: Definitions, lead: dict[str, object], message: str) -> None:
    leads = pd.DataFrame([make_lead(created_at="2026-01-05T10:00:00Z"), make_lead(**{"lead_id": "L-2", **lead})])
    with pytest.raises(ValueError, match=message):
        attribute_rows(leads, definitions)


def test_a_failed_write_keeps_the_previous_sources(definitions: Definitions, tmp_path: Path) -> None:
    good = CanonicalTables(pd.DataFrame([make_lead()]), pd.DataFrame([make_event()]), empty_stages())
    write_sources(good, definitions, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    bad_events = pd.DataFrame([make_event(occurred_at=pd.Timestamp("1850-01-01T00:00:00Z")), make_event()])
    with pytest.raises(ValueError, match="130 years"):
        bad = CanonicalTables(pd.DataFrame([make_lead(industry="Mining")]), bad_events, empty_stages())
        write_sources(bad, definitions, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_reserved_column_names_are_refused(definitions: Definitions) -> None:
    leads = pd.DataFrame([make_lead(event_timestamp="x")])
    with pytest.raises(ValueError, match="event_timestamp"):
        attribute_rows(leads, definitions)


def test_attribute_only_definitions_have_no_engagement_source(definitions: Definitions, tmp_path: Path) -> None:
    data = definitions.model_dump(mode="json", by_alias=True)
    data["event_types"] = []
    data["features"] = [f for f in data["features"] if f["kind"] == "attribute"]
    data["points"] = None  # the team's rules score engagement features this variant drops
    data["mql"]["criteria"] = []
    attrs_only = parse_definitions(data)
    tables = CanonicalTables(pd.DataFrame([make_lead()]), empty_events(), empty_stages())
    written = write_sources(tables, attrs_only, tmp_path)
    assert not written.with_engagement and written.n_attribute_rows == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lead_attributes.parquet"]

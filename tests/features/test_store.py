"""The built store end to end on a tiny workspace: point-in-time, no dropped rows, online == offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.activity import EARLIER, SECONDS, TYPES, engagement_at
from features.derive import derive
from features.feast_repo import apply_feature_service, open_store
from features.store import (
    OnlineFeatures,
    build_features,
    describe_features,
    labelled,
    training_frame,
)
from samepage.definitions import Definitions, parse_definitions
from samepage.settings import Settings
from samepage.tables import CanonicalTables, empty_stages, write_tables
from tests.conftest import DEFINITIONS_FILE, load_definitions, make_event, make_lead

UNTIL = pd.Timestamp("2026-03-01T00:00:00Z")
AS_OF = pd.Timestamp("2026-02-10T00:00:00Z")
FUTURE = AS_OF + pd.Timedelta(hours=1)


def _events() -> pd.DataFrame:
    rows = []
    for lead in ("L-1", "L-F"):  # twins: L-F also has one event after AS_OF
        rows += [
            make_event(lead_id=lead, occurred_at=pd.Timestamp("2026-01-20T09:00:00Z"), type="page_view"),
            make_event(lead_id=lead, occurred_at=pd.Timestamp("2026-02-01T09:00:00Z"), type="pricing_page_view"),
            make_event(lead_id=lead, occurred_at=pd.Timestamp("2026-02-05T09:00:00Z"), type="email_click"),
        ]
    rows.append(make_event(lead_id="L-F", occurred_at=FUTURE, type="pricing_page_view"))
    rows.append(make_event(lead_id="L-EDGE", occurred_at=AS_OF - pd.Timedelta(days=30, seconds=1)))
    rows.append(make_event(lead_id="L-LATE", occurred_at=pd.Timestamp("2026-02-20T09:00:00Z"), type="demo_request"))
    rows.append(make_event(lead_id="L-NOW", occurred_at=UNTIL - pd.Timedelta(days=2), type="webinar_attended"))
    return pd.DataFrame(rows)


def _leads() -> pd.DataFrame:
    return pd.DataFrame(
        [
            make_lead(lead_id="L-1"),
            make_lead(lead_id="L-F"),
            make_lead(lead_id="L-EDGE", industry="Mining"),
            make_lead(lead_id="L-LATE", seniority="Manager", department="Finance", job_title="Analyst"),
            make_lead(lead_id="L-NOW", employees=None, country=None),
            make_lead(lead_id="L-QUIET", created_at=pd.Timestamp("2026-02-15T00:00:00Z")),
        ]
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Definitions]:
    home = tmp_path_factory.mktemp("store") / "workspace"
    settings = Settings(home=home, definitions=DEFINITIONS_FILE, _env_file=None)
    defs = load_definitions(DEFINITIONS_FILE)
    write_tables(settings.data_dir, CanonicalTables(_leads(), _events(), empty_stages()))
    build_features(settings, defs, progress=False, until=UNTIL)
    return settings, defs


def _frame(built: tuple[Settings, Definitions], rows: list[tuple[str, pd.Timestamp]]) -> pd.DataFrame:
    settings, defs = built
    return training_frame(settings, defs, pd.DataFrame(rows, columns=["lead_id", "as_of"]))


def test_planted_future_event_never_changes_the_row(built: tuple[Settings, Definitions]) -> None:
    _, defs = built
    frame = _frame(built, [("L-1", AS_OF), ("L-F", AS_OF), ("L-F", FUTURE)])
    twin, planted, after = (frame.iloc[i][defs.feature_keys] for i in range(3))
    pd.testing.assert_series_equal(twin, planted, check_names=False)
    assert planted["pricing_views_30d"] == 1 and after["pricing_views_30d"] == 2  # the plant is real
    last = pd.Timestamp("2026-02-05T09:00:00Z")
    assert planted["days_since_last_activity"] == pytest.approx((AS_OF - last).total_seconds() / 86400)


def test_window_edge_drops_an_event_older_than_the_window(built: tuple[Settings, Definitions]) -> None:
    frame = _frame(built, [("L-EDGE", AS_OF), ("L-EDGE", AS_OF - pd.Timedelta(seconds=2))])
    assert frame.loc[0, "page_views_30d"] == 0 and frame.loc[0, "page_views_90d"] == 1
    assert frame.loc[1, "page_views_30d"] == 1


def test_no_requested_row_is_dropped(built: tuple[Settings, Definitions]) -> None:
    _, defs = built
    rows = [
        ("L-QUIET", pd.Timestamp("2026-02-01T00:00:00Z")),  # before it was created, no events
        ("L-LATE", AS_OF),  # has events, but only after as_of: Feast's file store drops this
        ("L-UNKNOWN", AS_OF),
        ("L-1", AS_OF),
        ("L-1", AS_OF),
    ]
    frame = _frame(built, rows)
    assert list(frame["lead_id"]) == [r[0] for r in rows]
    assert list(frame.columns) == ["lead_id", "as_of", *defs.feature_keys]
    assert frame.loc[0, defs.feature_keys].isna().all()
    assert frame.loc[2, defs.feature_keys].isna().all()
    assert frame.loc[1, "industry"] == "Software" and frame.loc[1, "demo_requests_90d"] == 0
    assert np.isnan(frame.loc[1, "days_since_last_activity"]) and frame.loc[1, "icp_persona"] == 0.0
    assert frame.loc[3, "page_views_30d"] == 1


def test_frame_types_and_labels(built: tuple[Settings, Definitions]) -> None:
    _, defs = built
    frame = _frame(built, [("L-1", AS_OF), ("L-NOW", UNTIL)])
    assert str(frame["as_of"].dt.tz) == "UTC"
    for f in defs.features:
        assert (frame[f.key].dtype == object) if f.is_categorical else (frame[f.key].dtype == "float64"), f.key
    assert frame.attrs["labels"]["page_views_30d"] == "Website page views in the last 30 days"
    assert labelled(frame, defs).columns[2] == ("source", "Lead source")
    assert list(describe_features(defs)["key"]) == defs.feature_keys


def test_online_equals_offline_at_the_same_time(built: tuple[Settings, Definitions]) -> None:
    settings, defs = built
    ids = ["L-1", "L-F", "L-EDGE", "L-LATE", "L-NOW", "L-QUIET"]
    offline = _frame(built, [(i, UNTIL) for i in ids])[defs.feature_keys]
    online = OnlineFeatures(settings, defs).get(ids, now=UNTIL)
    assert online["known"].all()
    pd.testing.assert_frame_equal(online[defs.feature_keys], offline.reset_index(drop=True), check_dtype=True)
    assert online.loc[4, "webinars_attended_90d"] == 1


def test_overrides_win_and_unknown_leads_score_from_them(built: tuple[Settings, Definitions]) -> None:
    settings, defs = built
    online = OnlineFeatures(settings, defs)
    got = online.get(
        ["L-1", "L-1", "NEW-1"],
        overrides=[None, {"industry": "Mining"}, {"industry": "Software", "employees": 80, "job_title": "CTO"}],
        now=UNTIL,
    )
    assert got.loc[0, "icp_industry"] == 1.0 and got.loc[1, "icp_industry"] == 0.0
    assert got.loc[1, "industry"] == "Mining" and got.loc[1, "page_views_90d"] == got.loc[0, "page_views_90d"]
    assert not got.loc[2, "known"] and got.loc[2, "icp_industry"] == 1.0 and got.loc[2, "employees"] == 80.0
    assert got.loc[2, "source"] is None and np.isnan(got.loc[2, "page_views_30d"])
    with pytest.raises(ValueError, match="attributes.employees"):
        online.get(["L-1"], overrides=[{"employees": "lots"}])


def test_online_read_equals_feasts_own_conversion(built: tuple[Settings, Definitions]) -> None:
    """`raw` reads the response's values directly; features match those derived from Feast's `to_dict`."""
    settings, defs = built
    online = OnlineFeatures(settings, defs)
    ids = ["L-1", "L-LATE", "L-QUIET", "NEW-1", "L-NOW"]
    overrides: list[dict[str, object] | None] = [
        {"created_at": "2026-01-02T03:04:05Z"},
        {"last_activity_at": "2026-02-20T12:00:00", "employees": 12},
        None,
        {"industry": "Software"},
        {"page_views_30d": 4},
    ]
    ours = online.get(ids, overrides, now=UNTIL)
    store = open_store(settings)
    stored = store.get_online_features(features=online.refs, entity_rows=[{"lead_id": i} for i in ids]).to_dict()
    lists = [stored.pop(f"{name}") for name in (TYPES, SECONDS, EARLIER)]
    stored.update(engagement_at(*lists, np.full(len(ids), UNTIL.value / 1e9), defs))
    theirs = derive(stored, [UNTIL] * len(ids), defs, overrides, online.attribute_kinds)
    pd.testing.assert_frame_equal(ours[defs.feature_keys], pd.DataFrame({k: theirs[k] for k in defs.feature_keys}))
    assert ours["known"].tolist() == [v is not None for v in stored["created_at"]] == [True, True, True, False, True]
    created = pd.Timestamp("2026-01-02T03:04:05Z")
    assert ours.loc[0, "days_since_created"] == pytest.approx((UNTIL - created).total_seconds() / 86_400)


def test_online_read_of_unsorted_and_repeated_ids_keeps_each_row(built: tuple[Settings, Definitions]) -> None:
    """The online store's own read answers ids in request order, repeats and unknown ids included (the case
    Feast issue #6805 reports wrong rows for on its precomputed path), as Feast's `get_online_features` does."""
    settings, defs = built
    online = OnlineFeatures(settings, defs)
    ids = ["L-QUIET", "L-1", "NEW-1", "L-1", "L-F", "L-QUIET", "L-1", "L-LATE", "L-EDGE", "L-F"]
    ours = online.get(ids, now=UNTIL)
    stored = open_store(settings).get_online_features(features=online.refs, entity_rows=[{"lead_id": i} for i in ids]).to_dict()
    lists = [stored.pop(name) for name in (TYPES, SECONDS, EARLIER)]
    stored.update(engagement_at(*lists, np.full(len(ids), UNTIL.value / 1e9), defs))
    theirs = derive(stored, [UNTIL] * len(ids), defs, None, online.attribute_kinds)
    pd.testing.assert_frame_equal(ours[defs.feature_keys], pd.DataFrame({k: theirs[k] for k in defs.feature_keys}))
    alone = pd.concat([online.get([i], now=UNTIL) for i in ids], ignore_index=True)
    pd.testing.assert_frame_equal(ours, alone)
    assert ours["known"].tolist() == [True, True, False, True, True, True, True, True, True, True]


def test_engagement_of_a_few_leads_equals_the_batch_path(
    built: tuple[Settings, Definitions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`engagement_at` counts a few leads in plain Python: the same numbers as its numpy path."""
    import features.activity as activity

    settings, defs = built
    online = OnlineFeatures(settings, defs)
    ids = ["L-1", "L-F", "NEW-1", "L-EDGE", "L-QUIET", "L-1"]
    stored = open_store(settings).get_online_features(features=online.refs, entity_rows=[{"lead_id": i} for i in ids]).to_dict()
    lists = [stored[name] for name in (TYPES, SECONDS, EARLIER)]
    for as_of in (AS_OF, FUTURE, UNTIL, AS_OF + pd.Timedelta(days=29, hours=23)):
        when = np.full(len(ids), as_of.value / 1e9)
        small = engagement_at(*lists, when, defs)
        monkeypatch.setattr(activity, "SMALL_READ", 0)
        batch = engagement_at(*lists, when, defs)
        monkeypatch.undo()
        assert small.keys() == batch.keys()
        for key in batch:
            np.testing.assert_array_equal(small[key], batch[key], err_msg=key)


def test_attributes_show_who_the_lead_is(built: tuple[Settings, Definitions]) -> None:
    settings, defs = built
    online = OnlineFeatures(settings, defs)
    who = online.attributes("L-LATE")
    assert who is not None and who["job_title"] == "Analyst" and who["industry"] == "Software"
    assert online.attributes("L-UNKNOWN") is None


def test_named_service_per_model_version(built: tuple[Settings, Definitions]) -> None:
    settings, defs = built
    name = apply_feature_service(settings, defs, "sql_likelihood_v3")
    assert open_store(settings).get_feature_service(name).tags["fingerprint"] == defs.fingerprint
    frame = training_frame(settings, defs, pd.DataFrame({"lead_id": ["L-1"], "as_of": [AS_OF]}), feature_service=name)
    assert frame.attrs["feature_service"] == name and frame.loc[0, "page_views_30d"] == 1
    assert OnlineFeatures(settings, defs, feature_service=name).get(["L-1"], now=AS_OF).loc[0, "known"]


def test_bad_entity_rows_are_named(built: tuple[Settings, Definitions]) -> None:
    settings, defs = built
    with pytest.raises(ValueError, match="as_of"):
        training_frame(settings, defs, pd.DataFrame({"lead_id": ["L-1"]}))
    with pytest.raises(ValueError, match="row 2"):
        training_frame(settings, defs, pd.DataFrame({"lead_id": ["L-1", None], "as_of": [AS_OF, AS_OF]}))


def test_attribute_only_definitions_build_and_serve(tmp_path: Path, definitions: Definitions) -> None:
    """X Education style: attributes only, no events, no engagement view."""
    data = definitions.model_dump(mode="json", by_alias=True)
    data["event_types"] = []
    data["features"] = [f for f in data["features"] if f["kind"] in ("attribute", "icp_match", "age")]
    data["points"] = None  # the team's rules score engagement features this variant drops
    data["mql"]["criteria"] = []
    defs = parse_definitions(data)
    settings = Settings(home=tmp_path / "ws", definitions=DEFINITIONS_FILE, _env_file=None)
    leads = pd.DataFrame([make_lead(lead_id="X-1", total_visits=5.0), make_lead(lead_id="X-2", industry=None)])
    write_tables(settings.data_dir, CanonicalTables(leads, _events().iloc[:0], empty_stages()))
    build_features(settings, definitions, progress=False, until=UNTIL)  # then the definitions change
    summary = build_features(settings, defs, progress=False, until=UNTIL)
    assert summary.feature_views == ["lead_attributes"]
    assert [v.name for v in open_store(settings).list_feature_views()] == ["lead_attributes"]
    frame = training_frame(settings, defs, pd.DataFrame({"lead_id": ["X-1", "X-2"], "as_of": [UNTIL, UNTIL]}))
    assert frame.loc[0, "icp_industry"] == 1.0 and np.isnan(frame.loc[1, "icp_industry"])
    online = OnlineFeatures(settings, defs).get(["X-1", "X-2"], now=UNTIL)
    pd.testing.assert_frame_equal(online[defs.feature_keys], frame[defs.feature_keys])
    assert OnlineFeatures(settings, defs).attributes("X-1")["total_visits"] == 5.0  # type: ignore[index]


def test_windowed_counts_age_at_read_time(tmp_path: Path, definitions: Definitions) -> None:
    """Nothing is rewritten after the build: a 7-day count drops when its event turns 8 days old."""
    settings = Settings(home=tmp_path / "ws", definitions=DEFINITIONS_FILE, _env_file=None)
    events = pd.DataFrame(
        [
            make_event(occurred_at=UNTIL - pd.Timedelta(days=1), type="page_view"),
            make_event(occurred_at=UNTIL - pd.Timedelta(days=1), type="demo_request"),
        ]
    )
    write_tables(settings.data_dir, CanonicalTables(pd.DataFrame([make_lead()]), events, empty_stages()))
    build_features(settings, definitions, progress=False, until=UNTIL)
    online = OnlineFeatures(settings, definitions)
    day = pd.Timedelta(days=1)
    seen = {}
    for later in (UNTIL, UNTIL + 6 * day - pd.Timedelta(seconds=1), UNTIL + 6 * day, UNTIL + 95 * day):
        fresh = online.get(["L-1"], now=later)
        offline = training_frame(settings, definitions, pd.DataFrame({"lead_id": ["L-1"], "as_of": [later]}))
        pd.testing.assert_frame_equal(fresh[definitions.feature_keys], offline[definitions.feature_keys])
        seen[later] = (fresh.loc[0, "page_views_7d"], fresh.loc[0, "demo_requests_90d"])
    assert list(seen.values()) == [(1, 1), (1, 1), (0, 1), (0, 0)]


def test_snapshots_of_one_lead_each_see_only_their_past(built: tuple[Settings, Definitions]) -> None:
    """Training asks for one lead at several as-of times in one call, in any order."""
    _, defs = built
    created = pd.Timestamp("2026-01-05T10:00:00Z")  # make_lead's creation time
    day = pd.Timedelta(days=1)
    second = pd.Timedelta(seconds=1)
    rows = [
        ("L-1", created + 90 * day),
        ("L-F", FUTURE - second),
        ("L-1", created),
        ("L-F", FUTURE),
        ("L-1", created + 30 * day),
        ("L-QUIET", created + 7 * day),  # before it was created: nothing known
        ("L-1", created + 7 * day),
        ("L-1", created + 30 * day),  # the same pair twice
    ]
    frame = _frame(built, rows)
    assert list(zip(frame["lead_id"], frame["as_of"], strict=True)) == rows
    # Each row is what that one (lead, as-of) gives alone: other snapshots never leak in.
    for i, row in enumerate(rows):
        alone = _frame(built, [row]).iloc[0][defs.feature_keys]
        pd.testing.assert_series_equal(frame.iloc[i][defs.feature_keys], alone, check_names=False)
    by_age = {round(float(a)): i for i, a in enumerate(frame["days_since_created"]) if frame.loc[i, "lead_id"] == "L-1"}
    assert sorted(by_age) == [0, 7, 30, 90]
    entry, week, month, quarter = (frame.loc[by_age[d]] for d in (0, 7, 30, 90))
    # L-1's events: page view on Jan 20, pricing view on Feb 1, email click on Feb 5.
    assert entry["page_views_90d"] == 0 and week["page_views_90d"] == 0 and np.isnan(week["days_since_last_activity"])
    assert month["page_views_30d"] == 1 and month["pricing_views_30d"] == 1 and month["email_clicks_30d"] == 0
    assert quarter["page_views_30d"] == 0 and quarter["page_views_90d"] == 1 and quarter["email_clicks_90d"] == 1
    assert quarter["days_since_last_activity"] == pytest.approx((created + 90 * day - pd.Timestamp("2026-02-05T09:00:00Z")) / day)
    # L-F's pricing view at FUTURE counts from that moment on, never a second before.
    assert frame.loc[1, "pricing_views_30d"] == 1 and frame.loc[3, "pricing_views_30d"] == 2
    assert frame.loc[5, defs.feature_keys].isna().all()
    pd.testing.assert_series_equal(frame.loc[4, defs.feature_keys], frame.loc[7, defs.feature_keys], check_names=False)

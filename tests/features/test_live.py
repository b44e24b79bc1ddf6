"""The online store follows the inbox: pushes are idempotent, survive rebuilds, and equal offline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.live import LiveFeatures
from features.store import OnlineFeatures, build_features, training_frame
from samepage.definitions import Definitions
from samepage.inbox import Inbox, LeadUpdate
from samepage.records import RecordStore
from samepage.settings import Settings
from samepage.tables import CanonicalTables, empty_stages, write_tables
from tests.conftest import DEFINITIONS_FILE
from tests.utils.builders import make_event, make_inbox_event, make_lead

UNTIL = pd.Timestamp("2026-03-01T00:00:00Z")
DAY = pd.Timedelta(days=1)


@pytest.fixture
def built(tmp_path: Path, definitions: Definitions) -> tuple[Settings, Inbox, LiveFeatures]:
    settings = Settings(home=tmp_path / "ws", definitions=DEFINITIONS_FILE, _env_file=None)
    leads = pd.DataFrame([make_lead(lead_id="L-1"), make_lead(lead_id="L-2", industry="Mining")])
    events = pd.DataFrame([make_event(lead_id="L-1", occurred_at=UNTIL - 3 * DAY, type="page_view")])
    write_tables(settings.data_dir, CanonicalTables(leads, events, empty_stages()))
    build_features(settings, definitions, progress=False, until=UNTIL)
    inbox = Inbox.of(RecordStore.from_settings(settings))
    return settings, inbox, LiveFeatures(settings, definitions, inbox)


def _at(settings: Settings, defs: Definitions, ids: list[str], when: pd.Timestamp) -> pd.DataFrame:
    return OnlineFeatures(settings, defs).get(ids, now=when)


Built = tuple[Settings, Inbox, LiveFeatures]


def test_a_pushed_event_counts_once_however_often_it_is_pushed(built: Built, definitions: Definitions) -> None:
    settings, inbox, live = built
    inbox.add_events([make_inbox_event(event_id="d1", lead_id="L-1", type="demo_request", occurred_at=UNTIL - DAY)])
    for _ in range(3):
        live.push_events(["L-1"], now=UNTIL)
    got = _at(settings, definitions, ["L-1"], UNTIL)
    assert got.loc[0, "demo_requests_90d"] == 1 and got.loc[0, "page_views_7d"] == 1  # imported one kept
    assert inbox.unpushed() == ([], [])
    # A rebuild reads the event from the inbox; catching up afterwards adds nothing twice.
    build_features(settings, definitions, progress=False, until=UNTIL)
    live.catch_up(since=UNTIL - 365 * DAY, now=UNTIL)
    assert _at(settings, definitions, ["L-1"], UNTIL).loc[0, "demo_requests_90d"] == 1


def test_pushed_rows_equal_the_offline_rows_after_a_rebuild(built: Built, definitions: Definitions) -> None:
    """What the online store holds from pushes equals what training reads after a rebuild, at any later time."""
    settings, inbox, live = built
    inbox.add_lead(LeadUpdate("L-2", {"industry": "Software", "employees": 900}))
    inbox.add_lead(LeadUpdate("N-1", {"industry": "Retail"}, created_at=(UNTIL - 5 * DAY).to_pydatetime()))
    inbox.add_events(
        [
            make_inbox_event(event_id="a", lead_id="L-1", type="pricing_page_view", occurred_at=UNTIL - 2 * DAY),
            make_inbox_event(event_id="b", lead_id="N-1", type="email_click", occurred_at=UNTIL - 4 * DAY),
            make_inbox_event(event_id="c", lead_id="N-1", type="webinar_attended", occurred_at=UNTIL - 200 * DAY),
            make_inbox_event(event_id="d", lead_id="L-2", type="unsubscribe", occurred_at=UNTIL - DAY + pd.Timedelta("0.4s")),
        ]
    )
    live.push_leads(["L-2", "N-1"], now=UNTIL)
    live.push_events(["L-1", "N-1", "L-2"], now=UNTIL)
    ids = ["L-1", "L-2", "N-1"]
    times = [UNTIL, UNTIL + 5 * DAY - pd.Timedelta("1s"), UNTIL + 26 * DAY, UNTIL + 89 * DAY]
    pushed = {t: _at(settings, definitions, ids, t) for t in times}
    assert pushed[UNTIL].loc[2, "email_clicks_30d"] == 1 and pushed[UNTIL].loc[2, "webinars_attended_90d"] == 0
    assert pushed[UNTIL].loc[1, "industry"] == "Software" and pushed[UNTIL].loc[1, "unsubscribes_90d"] == 1
    build_features(settings, definitions, progress=False, until=UNTIL)
    keys = definitions.feature_keys
    for t in times:
        offline = training_frame(settings, definitions, pd.DataFrame({"lead_id": ids, "as_of": [t] * 3}))
        pd.testing.assert_frame_equal(pushed[t][keys], offline[keys].reset_index(drop=True), check_exact=False, rtol=1e-12)
        pd.testing.assert_frame_equal(_at(settings, definitions, ids, t)[keys], pushed[t][keys])

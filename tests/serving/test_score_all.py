"""`samepage score --all`: every lead from the offline side, scored exactly as `POST /v1/score` scores it."""

from __future__ import annotations

import gc
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from features.offline import ChunkFeatures, RecentActivity, Sources, latest_engagement, lead_chunks, raw_columns
from samepage.cli import app as cli
from samepage.definitions import Definitions
from samepage.records import RecordStore
from samepage.settings import Settings
from serving import score_all as score_all_module
from serving.app import create_app
from serving.batch import BatchError
from serving.score_all import score_all
from serving.scorer import SERVING_GC_THRESHOLD, Scorer
from tests.serving.conftest import AUTH, lead_ids


@pytest.fixture(scope="module")
def now(workspace: Settings) -> datetime:
    """The as-of time of these tests: after the session workspace was built. The online store keeps
    only events of the longest window as of its build, so it cannot answer for a time before it (an
    event leaving a window in between would count offline and not online)."""
    return datetime.now(UTC).replace(microsecond=0)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == object or b.dtype == object:
        return np.array([x == y or (x is None and y is None) for x, y in zip(a, b, strict=True)])
    return (a == b) | (np.isnan(a.astype(float)) & np.isnan(b.astype(float)))


def test_offline_latest_rows_equal_the_online_store(workspace: Settings, definitions: Definitions, now: datetime) -> None:
    """The latest source row at or before now per lead holds what the online store serves now."""
    scorer = Scorer(workspace, definitions)
    scorer.refresh()
    assert scorer.champion is not None
    online = scorer.champion.online
    chunks = list(lead_chunks(Sources.of(workspace, definitions), definitions, pd.Timestamp(now), 700))
    assert len(chunks) == 3 and sum(map(len, chunks)) == Sources.of(workspace, definitions).n_leads()
    engaged = 0
    for frame in chunks:
        offline = ChunkFeatures(frame, definitions)
        got, want = offline.get(offline.ids, None, now), online.get(offline.ids, None, now)
        for key in [*definitions.feature_keys, "known"]:
            same = _same(got[key].to_numpy(), want[key].to_numpy())
            assert same.all(), f"{key}: offline {got[key][~same].head(3).tolist()} online {want[key][~same].head(3).tolist()}"
        engaged += int((got[definitions.feature_keys].select_dtypes("number").fillna(0) != 0).any(axis=1).sum())
        fields = [c.field for c in definitions.mql.criteria]
        for lead_id in offline.ids[:50]:  # what the MQL criteria read beside the features
            mine, theirs = offline.attributes(lead_id) or {}, online.attributes(lead_id) or {}
            assert {f: mine.get(f) for f in fields} == {f: theirs.get(f) for f in fields}
    assert engaged > 0


def test_the_activity_rows_give_each_leads_latest_engagement_row(
    workspace: Settings, definitions: Definitions, now: datetime
) -> None:
    """`score --all` computes engagement from the one activity row per lead as the online read does; at and
    after the build (window expiries included) that is every lead's latest engagement row, field by field."""
    sources = Sources.of(workspace, definitions)
    assert sources.activity is not None and sources.engagement is not None
    for when in (pd.Timestamp(now), pd.Timestamp(now) + pd.Timedelta("9D 7h 13s"), pd.Timestamp(now) + pd.Timedelta("100D")):
        recent = RecentActivity.read(sources.activity, when, definitions)
        assert recent is not None
        latest = latest_engagement(sources.engagement, definitions, when)
        mine_chunks = lead_chunks(sources, definitions, when, 700, recent)
        pairs = zip(mine_chunks, lead_chunks(sources, definitions, when, 700, latest), strict=True)
        counted = 0
        for mine, theirs in pairs:
            got, want = raw_columns(mine, definitions), raw_columns(theirs, definitions)
            assert got.keys() == want.keys()
            for key, column in want.items():
                if isinstance(column, np.ndarray) and column.dtype.kind == "M":
                    same = (got[key] == column) | (np.isnat(got[key]) & np.isnat(column))
                elif isinstance(column, np.ndarray):
                    same = _same(np.asarray(got[key]), column)
                else:  # attribute text, None where missing
                    same = np.array([a == b for a, b in zip(got[key], column, strict=True)])
                assert same.all(), f"{when} {key}: {np.asarray(got[key])[~same][:3]} vs {np.asarray(column)[~same][:3]}"
            counted += int(np.nansum(want["page_views_90d"]) > 0)
        assert counted > 0 or when > pd.Timestamp(now) + pd.Timedelta("90D")  # by then every window has emptied
    built = pq.read_table(sources.activity, columns=["event_timestamp"]).column(0)[0].as_py()
    before = pd.Timestamp(built) - pd.Timedelta("1s")
    assert RecentActivity.read(sources.activity, before, definitions) is None  # the activity rows cannot answer for then


def test_a_lead_whose_events_all_come_later_has_no_engagement_yet(definitions: Definitions) -> None:
    """As offline: no engagement row before a lead's first event, so its fields are missing, not zero; a lead
    whose events are all older than the longest window has its row (zero counts, its last activity)."""
    at = pd.Timestamp("2026-12-01T00:00:00Z")
    table = pa.table(
        {
            "lead_id": ["later", "long-ago", "now"],
            "recent_event_types": [["demo_request"], [], ["page_view", "demo_request"]],
            "recent_event_seconds": [[int(at.timestamp()) + 60], [], [int(at.timestamp()) - 3_600] * 2],
            "earlier_activity_at": pa.array([None, at - pd.Timedelta("200D"), None], type=pa.timestamp("ns", "UTC")),
        }
    )
    got = RecentActivity(table, definitions).engagement(np.array(["later", "long-ago", "now", "unknown"], dtype=object), at)
    assert np.isnan(got["demo_requests_90d"][[0, 3]]).all() and np.isnat(got["last_activity_at"][[0, 3]]).all()
    assert got["demo_requests_90d"][1] == 0 and got["last_activity_at"][1] == np.datetime64("2026-05-15T00:00:00")
    assert got["demo_requests_90d"][2] == 1 and got["page_views_30d"][2] == 1


def _frozen(at: datetime) -> type[datetime]:
    """`datetime` whose `now` is `at`: the API and `--all` score as of the same instant."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return at if tz is None else at.astimezone(tz)

    return Frozen


@pytest.fixture(scope="module")
def scored_all(
    own_workspace_module: Settings, definitions: Definitions, tmp_path_factory: pytest.TempPathFactory, now: datetime
) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("all") / "scores.parquet"
    summary = score_all(own_workspace_module, definitions, out, chunk=600, progress=False, now=now)
    frame = pd.read_parquet(out)
    assert summary.n_leads == len(frame) == Sources.of(own_workspace_module, definitions).n_leads()
    assert f"{summary.n_leads:,} leads" in str(summary)
    return frame


def test_every_lead_scores_like_the_api(
    scored_all: pd.DataFrame, own_workspace_module: Settings, definitions: Definitions, demo_leads: pd.DataFrame, now: datetime
) -> None:
    assert scored_all["lead_id"].is_unique and set(scored_all["lead_id"]) == set(demo_leads["lead_id"].astype(str))
    for _, row in scored_all.head(200).iterrows():
        contributions = json.loads(row["contributions"])
        assert set(contributions) == set(definitions.feature_keys)
        assert row["base_value"] + sum(contributions.values()) == pytest.approx(
            math.log(row["score"] / (1 - row["score"])), abs=1e-6
        )
    assert scored_all["definitions_version"].unique().tolist() == [definitions.version_string]
    assert set(scored_all["grade"]) <= {"A", "B", "C", "D"} and scored_all["mql_passed"].any()
    ids = lead_ids(demo_leads, 40, seed=16) + scored_all.loc[scored_all["mql_passed"], "lead_id"].head(5).tolist()
    mine = scored_all.set_index("lead_id").loc[ids]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("serving.scorer.datetime", _frozen(now))
        app = create_app(own_workspace_module, definitions, access_log=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            api = [client.post("/v1/score", json={"lead_id": i}, headers=AUTH).json() for i in ids]
    for lead_id, answer in zip(ids, api, strict=True):
        row = mine.loc[lead_id]
        assert abs(answer["score"] - row["score"]) <= 1e-9, lead_id
        assert "; ".join(answer["explanation"]["reasons_up"]) == row["reasons_up"]
        assert "; ".join(answer["explanation"]["reasons_down"]) == row["reasons_down"]
        assert answer["mql"]["passed"] == row["mql_passed"] and answer["mql"]["summary"] == row["mql_summary"]
        assert answer["grade"] == row["grade"] and answer["model"]["version"] == row["model_version"]
        assert (json.loads(row["to_pass"]) if row["to_pass"] else None) == answer["mql"]["to_pass"]
        # the API's trend starts from the score `--all` recorded for the lead
        assert answer["trend"]["previous_score"] == pytest.approx(row["score"], abs=1e-12)


def test_latest_scores_are_recorded_with_the_api_payload(scored_all: pd.DataFrame, own_workspace_module: Settings) -> None:
    store = RecordStore.from_settings(own_workspace_module)
    try:
        latest = store.latest_scores()
        row = scored_all.iloc[7]
        kept = store.latest_score(row["lead_id"])
    finally:
        store.close()
    assert set(scored_all["lead_id"]) <= set(latest["lead_id"])
    assert kept is not None and kept["score"] == pytest.approx(row["score"], abs=1e-12)
    payload = kept["payload"]
    assert set(payload) == {
        "lead_id", "score", "mql", "explanation", "model", "grade", "trend", "definitions_version", "scored_at"
    }  # fmt: skip
    assert "; ".join(payload["explanation"]["reasons_up"]) == row["reasons_up"]


def test_scoring_processes_give_the_same_output_and_records(
    scored_all: pd.DataFrame,
    own_workspace_module: Settings,
    definitions: Definitions,
    tmp_path: Path,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One process per core (forced here, on a small workspace) writes what one process writes, and
    leaves none of the chunks it spooled in the temporary folder."""
    out = tmp_path / "scores.parquet"
    real_mkdtemp = tempfile.mkdtemp
    spools: list[str] = []

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        spools.append(real_mkdtemp(*args, **kwargs))
        return spools[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    summary = score_all(own_workspace_module, definitions, out, chunk=600, progress=False, now=now, workers=2)
    ours = [spool for spool in spools if Path(spool).name.startswith("samepage-score-all-")]
    assert len(ours) == 1 and not Path(ours[0]).exists()  # spooled there, and removed with the run
    got = pd.read_parquet(out)
    assert summary.n_leads == len(got) == len(scored_all)
    changing = ["previous_score", "previous_at", "delta"]  # the first run recorded scores: this one has a trend
    pd.testing.assert_frame_equal(got.drop(columns=changing), scored_all.drop(columns=changing))
    assert got["previous_score"].tolist() == scored_all["score"].tolist()
    store = RecordStore.from_settings(own_workspace_module)
    try:
        kept = store.latest_score(got["lead_id"].iloc[-1])
        latest = store.latest_scores().set_index("lead_id")
    finally:
        store.close()
    assert kept is not None and kept["payload"]["trend"]["previous_score"] == got["previous_score"].iloc[-1]
    # the scoring processes saved every lead's latest score themselves
    saved = latest.loc[got["lead_id"]]
    assert saved["score"].tolist() == got["score"].tolist() and saved["mql_passed"].tolist() == got["mql_passed"].tolist()
    assert (saved["scored_at"] == pd.Timestamp(now)).all()


def test_a_scoring_process_collects_garbage_as_rarely_as_the_server(
    own_workspace_module: Settings, definitions: Definitions, tmp_path: Path
) -> None:
    """A chunk's answers are thousands of surviving objects: with Python's default thresholds a scoring
    process ran ~2,300 collections a chunk (each walking the champion), ~20 % of its time at 1M leads."""
    scorer = Scorer(own_workspace_module, definitions, online=False)
    scorer.refresh()
    assert scorer.champion is not None
    context = score_all_module._start_fork_server()
    start = (os.getpid(), own_workspace_module, definitions, scorer.champion, tmp_path)
    try:
        with ProcessPoolExecutor(1, context, initializer=score_all_module._start_worker, initargs=start) as pool:
            threshold, frozen = pool.submit(gc.get_threshold).result(), pool.submit(gc.get_freeze_count).result()
    finally:
        score_all_module._stop_fork_server()
    assert threshold == SERVING_GC_THRESHOLD
    assert frozen > 10_000  # the imports and the champion, out of the collector's sight


def test_csv_output_without_to_pass_and_a_second_run_has_trend(
    scored_all: pd.DataFrame, own_workspace_module: Settings, definitions: Definitions, tmp_path: Path, now: datetime
) -> None:
    out = tmp_path / "scores.csv"
    score_all(own_workspace_module, definitions, out, chunk=5_000, progress=False, now=now, suggest=False)
    got = pd.read_csv(out, dtype={"lead_id": str})
    assert got["to_pass"].isna().all() and (scored_all["to_pass"] != "").any()  # --no-to-pass: no search
    assert got.columns.tolist() == scored_all.columns.tolist() and len(got) == len(scored_all)
    assert got["score"].to_numpy() == pytest.approx(scored_all["score"].to_numpy(), abs=1e-12)
    assert got["delta"].to_numpy() == pytest.approx(np.zeros(len(got)), abs=1e-12)  # the same instant, scored again


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("scores.txt", "unsupported output format .txt"),
        ("a_dir.parquet", "is a directory"),
        ("file/scores.csv", "cannot write there"),
    ],
)
def test_a_bad_output_path_is_a_clear_error(
    workspace: Settings, definitions: Definitions, tmp_path: Path, name: str, message: str
) -> None:
    (tmp_path / "a_dir.parquet").mkdir()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(BatchError, match=message):
        score_all(workspace, definitions, tmp_path / name, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_dir.parquet", "file"]


def test_an_interrupted_run_leaves_no_output(
    own_workspace_module: Settings, definitions: Definitions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = score_all_module.score_frame
    calls = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(score_all_module, "score_frame", failing)
    with pytest.raises(KeyboardInterrupt):
        score_all(own_workspace_module, definitions, tmp_path / "scores.parquet", chunk=500, progress=False, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_process_leaves_no_output(own_workspace_module: Settings, tmp_path: Path) -> None:
    """SIGKILL mid-run (after the first chunk was written to the temporary file): the output never appears,
    and the scoring processes end, removing the chunks they spooled."""
    out = tmp_path / "scores.csv"
    temporary = tmp_path.parent / f"{tmp_path.name}-tmp"  # TMPDIR: not in the folder the output goes to
    temporary.mkdir()
    env = {
        **os.environ,
        "SAMEPAGE_HOME": str(own_workspace_module.home_dir),
        "SAMEPAGE_DEFINITIONS": str(own_workspace_module.definitions),
        "TMPDIR": str(temporary),
    }
    cmd = [
        sys.executable,
        "-c",
        "from samepage.cli import app; app()",
        "score",
        "--all",
        "--output",
        str(out),
        "--chunk-size",
        "20",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not any(p.name.endswith(".tmp") and p.stat().st_size for p in tmp_path.iterdir()):
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before it could be killed"
        # chunks of 20: a workspace of many chunks is scored by one process per core (forked by a fork server)
        workers = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    assert len(workers) >= 3, f"no scoring processes were started: {workers}"  # the fork server and its processes
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "scoring processes outlived the killed run"
    spooled = [spool.name for spool in temporary.iterdir() if spool.name.startswith("samepage-score-all-")]
    assert spooled == [], "the scoring processes left their spooled chunks"


def _descendants(root: int) -> list[int]:
    """Processes under `root`: children, theirs, and so on (Linux /proc)."""
    found: list[int] = []
    parents = [root]
    while parents:
        children = [pid for parent in parents for pid in _children(parent)]
        found += children
        parents = children
    return found


def _children(parent: int) -> list[int]:
    """Processes whose parent is `parent` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left for a parent to collect


def test_the_command_needs_exactly_one_of_input_and_all(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in ([], ["--all", "--input", str(tmp_path / "x.csv")]):
        result = runner.invoke(cli, ["score", "--output", str(tmp_path / "o.csv"), *args])
        assert result.exit_code == 2 and "exactly one of --input F or --all" in result.output
    result = runner.invoke(
        cli, ["score", "--input", str(tmp_path / "x.csv"), "--output", str(tmp_path / "o.csv"), "--engine", "spark"]
    )
    assert result.exit_code == 2 and "--engine spark scores --all only" in result.output


def test_leads_and_events_from_the_api_are_scored(own_workspace: Settings, definitions: Definitions, tmp_path: Path) -> None:
    """A lead PUT and an event POSTed since the last feature build: `--all` builds them in and scores them."""
    app = create_app(own_workspace, definitions, access_log=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        put = client.put("/v1/leads/api-only-1", json={"attributes": {"industry": "Software", "employees": 420}}, headers=AUTH)
        assert put.status_code == 201, put.text
        when = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        event = {"lead_id": "api-only-1", "type": "demo_request", "occurred_at": when}
        assert client.post("/v1/events", json={"events": [event]}, headers=AUTH).status_code == 200
    out = tmp_path / "scores.parquet"
    score_all(own_workspace, definitions, out, progress=False)
    got = pd.read_parquet(out).set_index("lead_id")
    contributions = json.loads(got.loc["api-only-1", "contributions"])
    assert set(contributions) == set(definitions.feature_keys)
    assert len(got) == Sources.of(own_workspace, definitions).n_leads() and "api-only-1" in got.index
    demo = [f.key for f in definitions.features if f.kind == "event_count" and f.event_type == "demo_request"]
    store = RecordStore.from_settings(own_workspace)
    try:
        payload = (store.latest_score("api-only-1") or {})["payload"]
    finally:
        store.close()
    values = {c["feature"]: c["value"] for c in payload["explanation"]["contributions"]}
    assert demo and all(values[k] == 1 for k in demo)  # the event the API took counts


def test_a_run_on_an_up_to_date_workspace_never_imports_feast(own_workspace: Settings, tmp_path: Path) -> None:
    """Its features come from the source files and its champion scores them as they come: neither the
    refresh (nothing to push) nor the champion's load needs Feast, whose imports took ~3 s of the start."""
    code = (
        "import sys\n"
        "from samepage.definitions import load_definitions\n"
        "from samepage.settings import Settings\n"
        "from serving.score_all import score_all\n"
        "settings = Settings()\n"
        f"out = {str(tmp_path / 'scores.parquet')!r}\n"
        "summary = score_all(settings, load_definitions(settings.definitions), out, progress=False)\n"
        "print(summary.n_leads, summary.model_version, sorted(m for m in sys.modules if m.split('.')[0] == 'feast')[:3])\n"
    )
    env = {**os.environ, "SAMEPAGE_HOME": str(own_workspace.home_dir), "SAMEPAGE_DEFINITIONS": str(own_workspace.definitions)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    n_leads, version, feast_modules = done.stdout.split(maxsplit=2)
    assert int(n_leads) > 0 and version.isdigit()  # a registered champion scored (the points rules carry the definitions version)
    assert feast_modules.strip() == "[]"

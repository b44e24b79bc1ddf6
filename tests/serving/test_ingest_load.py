"""Ingestion under load, against a real `samepage serve` process: no 5xx and no acknowledged event lost,
not even when the server is killed (`kill -9`) in the middle of a burst.

8 writer threads post events (with event_ids, to known demo leads) while 4 clients score the same
leads, each over its own keep-alive connection. Every acknowledged event must be in the inbox once,
and the leads' online counts (the explanation's `demo_requests_90d`, `page_views_7d` values) must go
up by exactly the events stored for them, after a restart too (the startup catch-up pushes what the
crash left unpushed).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from samepage.inbox import Inbox, InboxEvent
from samepage.records import RecordStore
from samepage.settings import Settings
from tests.conftest import REPO
from tests.serving.conftest import API_KEYS, lead_ids

pytestmark = pytest.mark.slow

WRITERS = 8
SCORERS = 4
BATCH = 10  # events per call
COUNTED = {"demo_request": "demo_requests_90d", "page_view": "page_views_7d"}
HEADERS = {"Authorization": f"Bearer {API_KEYS[0]}", "Content-Type": "application/json"}


# -- the server process -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`samepage serve` over a workspace, as a child process in its own process group."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = free_port()
        script = Path(sys.executable).with_name("samepage")
        cmd = [str(script)] if script.exists() else [sys.executable, "-c", "from samepage.cli import app; app()"]
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),  # this checkout's code, whichever checkout the venv was installed from
            "SAMEPAGE_HOME": str(self.settings.home_dir),
            "SAMEPAGE_DEFINITIONS": str(self.settings.definitions),
            "SAMEPAGE_API_KEYS": self.settings.api_keys,
            "SAMEPAGE_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SAMEPAGE_STARTUP_WAIT_SECONDS": "300",  # listening means the champion is loaded
            "SAMEPAGE_ONLINE_REFRESH_SECONDS": "0",  # only the startup catch-up may push what requests did not
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*cmd, "serve", "--port", str(self.port)],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"samepage serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if request(self.connect(), "GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"samepage serve was not ready in 180 s:\n{self.log.read_text()[-3000:]}")

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def kill(self) -> None:
        """`kill -9`: no shutdown, no flush, whatever the process was doing."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)


def request(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn.request(method, path, None if body is None else json.dumps(body), HEADERS)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, json.loads(data) if data else None


@pytest.fixture(scope="module")
def server(own_workspace_module: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(own_workspace_module, tmp_path_factory.mktemp("load") / "serve.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def leads(demo_leads: pd.DataFrame) -> list[str]:
    return lead_ids(demo_leads, 6, seed=10)


# -- the load -----------------------------------------------------------------------------------
@dataclass
class Burst:
    """What the writers and scorers saw: acknowledged events and every status."""

    acked: list[dict[str, Any]] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, status: int, events: list[dict[str, Any]] | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
            if events is not None and status == 200:
                self.acked += events


def events_for(prefix: str, writer: int, call: int, leads: list[str], now: datetime) -> list[dict[str, Any]]:
    """A call's events: whole-second times in the last hour (counted at once), demo requests and page views."""
    out = []
    for j in range(BATCH):
        n = writer * 1_000_003 + call * BATCH + j
        when = (now - timedelta(seconds=1 + n % 3_600)).replace(microsecond=0)
        out.append(
            {
                "event_id": f"{prefix}-{writer}-{call}-{j}",
                "lead_id": leads[n % len(leads)],
                "type": "demo_request" if j % 3 == 0 else "page_view",
                "occurred_at": when.isoformat().replace("+00:00", "Z"),
            }
        )
    return out


def write(server: Server, burst: Burst, prefix: str, writer: int, leads: list[str], calls: int | None) -> None:
    """Post `calls` batches (None: until the server goes away)."""
    conn = server.connect()
    now = datetime.now(UTC)
    call = 0
    try:
        while calls is None or call < calls:
            events = events_for(prefix, writer, call, leads, now)
            status, answer = request(conn, "POST", "/v1/events", {"events": events})
            burst.note(status, events)
            if status == 200 and answer != {"accepted": BATCH, "duplicates": 0}:
                burst.errors.append(f"writer {writer} call {call}: {answer}")
            call += 1
    except (OSError, http.client.HTTPException) as exc:
        if calls is not None:
            burst.errors.append(f"writer {writer}: {exc!r}")
    finally:
        conn.close()


def score(server: Server, burst: Burst, leads: list[str], done: threading.Event, k: int) -> None:
    conn = server.connect()
    i = k
    try:
        while not done.is_set():
            status, _ = request(conn, "POST", "/v1/score", {"lead_id": leads[i % len(leads)]})
            burst.note(status)
            i += 1
    except (OSError, http.client.HTTPException) as exc:
        if not done.is_set():
            burst.errors.append(f"scorer {k}: {exc!r}")
    finally:
        conn.close()


def run_burst(server: Server, prefix: str, leads: list[str], calls: int | None, kill_after: int = 0) -> Burst:
    """8 writers and 4 scorers at once; with `kill_after`, `kill -9` the server once that many events are acknowledged."""
    burst = Burst()
    done = threading.Event()
    writers = [threading.Thread(target=write, args=(server, burst, prefix, w, leads, calls)) for w in range(WRITERS)]
    scorers = [threading.Thread(target=score, args=(server, burst, leads, done, k)) for k in range(SCORERS)]
    for t in writers + scorers:
        t.start()
    if kill_after:
        deadline = time.monotonic() + 60
        while len(burst.acked) < kill_after and time.monotonic() < deadline and any(t.is_alive() for t in writers):
            time.sleep(0.01)
        done.set()
        server.kill()
    for t in writers:
        t.join(120)
    done.set()
    for t in scorers:
        t.join(120)
    return burst


# -- what the store and the scores hold ---------------------------------------------------------
def stored(settings: Settings, prefix: str) -> pd.DataFrame:
    records = RecordStore.from_settings(settings)
    try:
        events = Inbox.of(records).events()
    finally:
        records.close()
    return events.loc[events["event_id"].str.startswith(f"{prefix}-")]


def counts(server: Server, leads: list[str]) -> dict[tuple[str, str], float]:
    """The leads' online counts of the counted event types, as the score's explanation shows them."""
    conn = server.connect()
    out = {}
    try:
        for lead in leads:
            status, result = request(conn, "POST", "/v1/score", {"lead_id": lead})
            assert status == 200, result
            values = {c["feature"]: c["value"] for c in result["explanation"]["contributions"]}
            for feature in COUNTED.values():
                out[(lead, feature)] = values[feature] or 0  # None: no activity row yet, i.e. none
    finally:
        conn.close()
    return out


def expected(before: dict[tuple[str, str], float], events: pd.DataFrame) -> dict[tuple[str, str], float]:
    out = dict(before)
    for (lead, type_), n in events.groupby(["lead_id", "type"]).size().items():
        out[(str(lead), COUNTED[str(type_)])] += int(n)
    return out


def test_concurrent_writers_and_scorers_lose_nothing(server: Server, own_workspace_module: Settings, leads: list[str]) -> None:
    before = counts(server, leads)
    burst = run_burst(server, "load", leads, calls=12)
    assert burst.errors == []
    assert set(burst.statuses) == {200}, burst.statuses  # no 5xx, and nothing refused either
    assert len(burst.acked) == WRITERS * 12 * BATCH
    inbox = stored(own_workspace_module, "load")
    assert inbox["event_id"].value_counts().max() == 1
    assert set(inbox["event_id"]) == {e["event_id"] for e in burst.acked}
    acked = pd.DataFrame(burst.acked)
    assert counts(server, leads) == expected(before, acked)  # every acknowledged event counted online, once


def test_kill_9_during_a_burst_loses_no_acknowledged_event(
    server: Server, own_workspace_module: Settings, leads: list[str]
) -> None:
    before = counts(server, leads)
    burst = run_burst(server, "crash", leads, calls=None, kill_after=200)
    assert len(burst.acked) >= 200, (burst.statuses, burst.errors)
    assert not any(status >= 500 for status in burst.statuses), burst.statuses
    # A crash between an event's commit and its push: stored, never pushed. The next start pushes it.
    records = RecordStore.from_settings(own_workspace_module)
    try:
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        orphans = [InboxEvent(f"crash-orphan-{i}", leads[0], "demo_request", now) for i in range(3)]
        assert len(Inbox.of(records).add_events(orphans)) == 3
    finally:
        records.close()

    server.start()
    inbox = stored(own_workspace_module, "crash")
    assert inbox["event_id"].value_counts().max() == 1
    assert {e["event_id"] for e in burst.acked} <= set(inbox["event_id"])  # acknowledged means durable
    records = RecordStore.from_settings(own_workspace_module)
    try:
        deadline = time.monotonic() + 60
        while Inbox.of(records).unpushed() != ([], []) and time.monotonic() < deadline:
            time.sleep(0.2)  # the startup catch-up runs beside the first requests
        assert Inbox.of(records).unpushed() == ([], [])
    finally:
        records.close()
    # Online: the stored events (acknowledged or not: a call can commit and die before it answers), once each.
    assert counts(server, leads) == expected(before, inbox)

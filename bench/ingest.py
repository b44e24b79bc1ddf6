"""Ingestion benchmark: events/s through POST /v1/events, and /v1/score latency right after an ingest.

    .venv/bin/python bench/ingest.py [--home DIR] [--leads N] [--calls N] [--clients N] [--pairs N]

Bootstraps a demo workspace if DIR has no champion (demo → features → train, as bench/serve.py
does, and the same default DIR), copies it (ingestion writes to the inbox and the online store, and
the workspace stays as it was for the next run) and starts `samepage serve` on loopback over the
copy. Then, over keep-alive connections:
- one call of 10,000 events (to 1,000 demo leads), several times: events/s of the call;
- `--calls` calls of 10 events from 1 client, then from `--clients` clients at once: events/s;
- for `--pairs` demo leads, each in turn: score it (no preceding ingest), post one demo request for
  it, score it again at once (ingest → score); p50/p99 of both scores and of the one-event post,
  checking that the second score counts the new event (`demo_requests_90d` one higher).
Prints one table with the machine's load average. Not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import ensure_workspace, free_port  # bench/common.py (this folder is on the path)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
KEY = "bench-key"
HEADERS = {"Content-Type": "application/json", "X-API-Key": KEY}
BIG = 10_000  # the contract's largest call
SMALL = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home", type=Path, default=Path(tempfile.gettempdir()) / "samepage-bench", help="Workspace (made if it has no champion)"
    )
    parser.add_argument("--leads", type=int, default=5_000, help="Demo leads when bootstrapping")
    parser.add_argument("--big-calls", type=int, default=3, help="Calls of 10,000 events")
    parser.add_argument("--calls", type=int, default=1_000, help="Calls of 10 events, per client count")
    parser.add_argument("--clients", type=int, default=8, help="Concurrent clients for the second small-call run")
    parser.add_argument("--pairs", type=int, default=300, help="Leads scored before and right after an ingest")
    args = parser.parse_args()

    from samepage.definitions import load_definitions
    from samepage.settings import Settings
    from samepage.tables import read_tables

    defs_file = REPO / "configs" / "definitions.yaml"
    settings = Settings(home=args.home, definitions=defs_file, api_keys=KEY, _env_file=None)
    ensure_workspace(settings, load_definitions(defs_file), args.leads, note="served from a copy")
    leads = read_tables(settings.data_dir).leads["lead_id"].astype(str).tolist()

    work = Path(tempfile.mkdtemp(prefix="samepage-bench-ingest-"))
    home = work / "workspace"
    shutil.copytree(settings.home_dir, home)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),  # this checkout's code
        "SAMEPAGE_HOME": str(home),
        "SAMEPAGE_API_KEYS": KEY,
        "SAMEPAGE_DEFINITIONS": str(defs_file),
        "SAMEPAGE_STARTUP_WAIT_SECONDS": "300",
    }
    log = work / "samepage.log"
    proc = subprocess.Popen(
        [str(BIN / "samepage"), "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", 180, proc, log)
        bench = Bench(port, leads)
        bench.post_events(bench.events(SMALL))  # warm-up: first imports, first online write
        rows = [
            ("1 call of 10,000 events", bench.big(args.big_calls)),
            (f"{args.calls:,} calls of 10, 1 client", bench.small(args.calls, 1)),
            (f"{args.calls:,} calls of 10, {args.clients} clients", bench.small(args.calls, args.clients)),
        ]
        pairs = bench.ingest_then_score(args.pairs)
        print_table(rows, pairs, args)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


# -- setup ----------------------------------------------------------------------------------------
def wait_ready(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"samepage serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become ready in {timeout:.0f}s")


# -- load -----------------------------------------------------------------------------------------
class Bench:
    """Calls to one service over keep-alive connections; event ids are unique across the run."""

    def __init__(self, port: int, leads: list[str]) -> None:
        self.port = port
        self.leads = leads
        self._next = 0
        self._lock = threading.Lock()

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def call(self, conn: http.client.HTTPConnection, path: str, body: Any) -> tuple[Any, float]:
        """The answer and the seconds it took; any non-200 ends the run (the figures would mean nothing)."""
        data = json.dumps(body).encode()
        started = time.perf_counter()
        conn.request("POST", path, data, HEADERS)
        resp = conn.getresponse()
        answer = resp.read()
        took = time.perf_counter() - started
        if resp.status != 200:
            raise SystemExit(f"{path}: {resp.status} {answer[:500]!r}")
        return json.loads(answer), took

    def events(self, n: int, lead: str | None = None, type_: str = "page_view") -> list[dict[str, Any]]:
        """n new events (whole-second times in the last day) to demo leads, or all to `lead`."""
        with self._lock:
            first, self._next = self._next, self._next + n
        now = datetime.now(UTC).replace(microsecond=0)
        return [
            {
                "event_id": f"bench-{os.getpid()}-{k}",
                "lead_id": lead or self.leads[(k * 7919) % min(len(self.leads), 1_000)],
                "type": type_,
                "occurred_at": (now - timedelta(seconds=k % 86_400)).isoformat().replace("+00:00", "Z"),
            }
            for k in range(first, first + n)
        ]

    def post_events(self, events: list[dict[str, Any]], conn: http.client.HTTPConnection | None = None) -> float:
        own = conn is None
        conn = conn or self.connect()
        try:
            answer, took = self.call(conn, "/v1/events", {"events": events})
        finally:
            if own:
                conn.close()
        if answer != {"accepted": len(events), "duplicates": 0}:
            raise SystemExit(f"/v1/events answered {answer} for {len(events)} new events")
        return took

    def big(self, calls: int) -> dict[str, float]:
        times = [self.post_events(self.events(BIG)) for _ in range(calls)]
        return {"events_per_s": BIG / median(times), "p50_ms": 1e3 * median(times), "p99_ms": 1e3 * max(times)}

    def small(self, calls: int, clients: int) -> dict[str, float]:
        """`calls` calls of SMALL events spread over `clients` threads; events/s over the wall time."""
        times: list[float] = []
        share = [calls // clients + (1 if i < calls % clients else 0) for i in range(clients)]

        def run(n: int) -> None:
            conn = self.connect()
            mine = [self.post_events(self.events(SMALL), conn) for _ in range(n)]
            conn.close()
            with self._lock:
                times.extend(mine)

        threads = [threading.Thread(target=run, args=(n,)) for n in share]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        return {"events_per_s": calls * SMALL / wall, "p50_ms": 1e3 * median(times), "p99_ms": 1e3 * pct(times, 0.99)}

    def ingest_then_score(self, n: int) -> dict[str, list[float]]:
        """Per lead: score, post one demo request, score at once (the second must count it)."""
        conn = self.connect()
        out: dict[str, list[float]] = {"score": [], "ingest": [], "score_after": []}
        for lead in self.leads[-n:]:  # leads the event runs above did not touch
            before, took = self.call(conn, "/v1/score", {"lead_id": lead})
            out["score"].append(took)
            out["ingest"].append(self.post_events(self.events(1, lead, "demo_request"), conn))
            after, took = self.call(conn, "/v1/score", {"lead_id": lead})
            out["score_after"].append(took)
            if demo_requests(after) != demo_requests(before) + 1:
                counted = f"{demo_requests(before)} → {demo_requests(after)}"
                raise SystemExit(f"{lead}: the score right after the ingest did not count it ({counted})")
        conn.close()
        return out


def demo_requests(result: dict[str, Any]) -> float:
    value = next(c["value"] for c in result["explanation"]["contributions"] if c["feature"] == "demo_requests_90d")
    return value or 0.0


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# -- report ---------------------------------------------------------------------------------------
def print_table(rows: list[tuple[str, dict[str, float]]], pairs: dict[str, list[float]], args: argparse.Namespace) -> None:
    load1, load5, _ = os.getloadavg()
    stores = f"{os.environ.get('SAMEPAGE_ONLINE_STORE', 'sqlite')} online store"
    print(f"\nloopback, {os.cpu_count()} cores, load average {load1:.1f} (1 min) {load5:.1f} (5 min); {stores}")
    print(f"{'POST /v1/events':<32} {'events/s':>10} {'call p50 ms':>12} {'call p99 ms':>12}")
    for label, r in rows:
        print(f"{label:<32} {r['events_per_s']:>10,.0f} {r['p50_ms']:>12.1f} {r['p99_ms']:>12.1f}")
    if args.big_calls < 100:
        print(f"  (10,000-event calls: {args.big_calls} of them; their 'p99' is the slowest)")
    print(f"\n{'/v1/score, 1 client, ' + str(len(pairs['score'])) + ' leads':<32} {'p50 ms':>10} {'p99 ms':>12}")
    for label, key in (
        ("score, no preceding ingest", "score"),
        ("POST 1 event (demo request)", "ingest"),
        ("score right after that ingest", "score_after"),
    ):
        print(f"{label:<32} {1e3 * median(pairs[key]):>10.2f} {1e3 * pct(pairs[key], 0.99):>12.2f}")
    print("every score right after its ingest counted the new demo request (demo_requests_90d one higher)")


if __name__ == "__main__":
    main()

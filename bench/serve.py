"""Serving benchmark: samepage's /v1/score beside `mlflow models serve` on the same registered model.

    .venv/bin/python bench/serve.py [--home DIR] [--leads N] [--seconds S]

Bootstraps a demo workspace if DIR has no champion (demo → features → train), starts both
services on loopback (`samepage serve`, and `mlflow models serve -m models:/sql_likelihood@champion
--env-manager local`), and drives each with a load generator in another process (`wrk` when
installed, else a small Python generator), bounded in time: latency p50/p99 with 1 client, and
requests/s with p99 with 16 clients, for one lead and for a batch of 1,000. samepage reads the
features from the Feast online store and returns the full explanation; mlflow gets the same
leads' feature rows in the request and returns bare scores. In the same run it times LightGBM's
own `pred_contrib` on the same 1,000 rows and model, beside samepage's `explain` on them, the
in-process breakdown of one score (online read, engagement_at, derivation, explain, to_pass,
trend look-up; HTTP + middleware = the 1-client p50 minus the in-process p50), and an independent
`http.client` run (one keep-alive connection, 100 warm-up then 500 requests). The served code is
this checkout's (PYTHONPATH), not whatever the venv installed. `--workers N` serves with N workers
(default 0: one per core, as `samepage serve`).
Prints one table and the ratios. Not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import ensure_workspace, free_port  # bench/common.py (this folder is on the path)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
KEY = "bench-key"
SAMPLE = 1_000

WRK_SCRIPT = """
local bodies = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-Key"] = args[2]
end
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", nil, nil, bodies[i])
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home", type=Path, default=Path(tempfile.gettempdir()) / "samepage-bench", help="Workspace (made if it has no champion)"
    )
    parser.add_argument("--leads", type=int, default=5_000, help="Demo leads when bootstrapping")
    parser.add_argument("--seconds", type=float, default=8.0, help="Duration of each load run")
    parser.add_argument("--port", type=int, default=0, help="samepage port, mlflow gets port+1 (default: two free ports)")
    parser.add_argument("--workers", type=int, default=0, help="samepage worker processes (0, the default: one per core)")
    args = parser.parse_args()

    from samepage.definitions import load_definitions
    from samepage.settings import Settings

    defs_file = REPO / "configs" / "definitions.yaml"
    settings = Settings(home=args.home, definitions=defs_file, api_keys=KEY, _env_file=None)
    defs = load_definitions(defs_file)
    # The comparison is with LightGBM's pred_contrib: register (and promote) a LightGBM model whatever wins.
    ensure_workspace(settings, defs, args.leads, kind="lightgbm", quality_floor=False)
    frame, ids = sample_rows(settings, defs)
    contrib = time_pred_contrib(settings, defs, frame)
    contrib.update(time_online_read(settings, defs, ids))
    contrib.update(time_breakdown(settings, defs, ids))

    work = Path(tempfile.mkdtemp(prefix="samepage-bench-"))
    bodies = write_bodies(work, defs, frame, ids)
    env = {
        **os.environ,
        "SAMEPAGE_HOME": str(settings.home_dir),
        "SAMEPAGE_API_KEYS": KEY,
        "SAMEPAGE_DEFINITIONS": str(defs_file),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "MLFLOW_REGISTRY_URI": settings.tracking_uri,
        "SAMEPAGE_WORKERS": str(args.workers),
        "PYTHONPATH": str(REPO),  # serve this checkout, not the venv's editable install
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # mlflow execs `uvicorn` from PATH
    ours_port, theirs_port = (args.port, args.port + 1) if args.port else (free_port(), free_port())
    ours_url = f"http://127.0.0.1:{ours_port}"
    theirs_url = f"http://127.0.0.1:{theirs_port}"
    procs = [
        start(serve_command(ours_port, args.workers), env, work / "samepage.log"),
        start(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/sql_likelihood@champion",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(theirs_port),
            ],
            env,
            work / "mlflow.log",
        ),
    ]
    try:
        wait_ready(f"{ours_url}/readyz", 180)
        wait_ready(f"{theirs_url}/ping", 180)
        check_answers(ours_url, theirs_url, bodies, lambda: mlflow_body(*mlflow_rows(online_rows(settings, defs, ids))))
        contrib.update(independent_client(ours_port, bodies[("samepage", "single")]))
        rows = []
        for label, kind in (("1 lead", "single"), ("1,000 leads", "batch")):
            for who, url, path in (
                ("samepage", ours_url, "/v1/score" if kind == "single" else "/v1/score/batch"),
                ("mlflow", theirs_url, "/invocations"),
            ):
                body_file = bodies[(who, kind)]
                one = load(url + path, body_file, 1, args.seconds, work)
                many = load(url + path, body_file, 16, args.seconds, work)
                rows.append((label, who, one, many))
        print_table(rows, contrib, args)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


# -- setup ----------------------------------------------------------------------------------------
def serve_command(port: int, workers: int) -> list[str]:
    """`samepage serve` with `workers` processes (0: one per core, the service's default)."""
    return [str(BIN / "samepage"), "serve", "--port", str(port), "--workers", str(workers)]


def sample_rows(settings: Any, defs: Any) -> tuple[Any, list[str]]:
    """SAMPLE known leads and their online feature rows (what mlflow gets in the request)."""
    import numpy as np

    from samepage.tables import read_tables

    leads = read_tables(settings.data_dir).leads
    rng = np.random.default_rng(0)
    ids = [str(x) for x in rng.choice(leads["lead_id"].astype(str).to_numpy(), size=min(SAMPLE, len(leads)), replace=False)]
    return online_rows(settings, defs, ids), ids


def online_rows(settings: Any, defs: Any, ids: list[str]) -> Any:
    """The leads' feature rows from the online store, as of now (the champion's feature service)."""
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from features.store import OnlineFeatures

    tags = MlflowClient(tracking_uri=settings.tracking_uri).get_model_version_by_alias("sql_likelihood", "champion").tags
    online = OnlineFeatures(settings, defs, feature_service=tags.get("feature_service"))
    return online.get(ids, [{}] * len(ids), pd.Timestamp.now(tz="UTC"))[defs.feature_keys]


def time_pred_contrib(settings: Any, defs: Any, frame: Any, reps: int = 15) -> dict[str, float]:
    """Median ms for LightGBM's pred_contrib alone vs samepage's explain, same rows and model."""
    import mlflow

    from serving.explain import encode, explain

    mlflow.set_tracking_uri(settings.tracking_uri)
    bundle = mlflow.pyfunc.load_model("models:/sql_likelihood@champion").unwrap_python_model().bundle
    X = encode(bundle.encoder, frame)

    return {
        "rows": len(frame),
        "trees": bundle.booster.num_trees(),
        "features": len(bundle.feature_keys),
        "pred_contrib_ms": median_ms(lambda: bundle.booster.predict(X, pred_contrib=True), reps),
        "explain_ms": median_ms(lambda: explain(bundle, defs, frame), reps),
    }


def median_ms(fn: Any, reps: int) -> float:
    """Median wall time of `reps` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * sorted(times)[len(times) // 2]


def time_online_read(settings: Any, defs: Any, ids: list[str], reps: int = 15) -> dict[str, float]:
    """Median ms for 1,000 leads: Feast's `get_online_features` alone (the refs serving reads), our columns
    from its response + engagement_at (`raw`), and the whole read with the derivation (`columns`)."""
    import pandas as pd

    from features.feast_repo import open_store

    online = _online(settings, defs)
    store = open_store(settings)
    rows = [{"lead_id": i} for i in ids]
    now = pd.Timestamp.now(tz="UTC")
    return {
        "feast_ms": median_ms(lambda: store.get_online_features(features=online.refs, entity_rows=rows), reps),
        "raw_ms": median_ms(lambda: online.raw(ids, now), reps),
        "online_ms": median_ms(lambda: _columns(online, ids, now), reps),
    }


def _columns(online: Any, ids: list[str], now: Any) -> Any:
    """The derived features (`OnlineFeatures.columns`; `get`, a DataFrame, in an older checkout)."""
    read = getattr(online, "columns", None) or online.get
    return read(ids, [{}] * len(ids), now)


def _online(settings: Any, defs: Any) -> Any:
    from mlflow.tracking import MlflowClient

    from features.store import OnlineFeatures

    tags = MlflowClient(tracking_uri=settings.tracking_uri).get_model_version_by_alias("sql_likelihood", "champion").tags
    return OnlineFeatures(settings, defs, feature_service=tags.get("feature_service"))


def time_breakdown(settings: Any, defs: Any, ids: list[str], reps: int = 300) -> dict[str, float]:
    """p50 ms of each step of scoring one lead in-process (each timed alone, over `reps` leads), and the whole
    `Scorer.score` for 1 lead and for the 1,000."""
    import numpy as np
    import pandas as pd

    from features.activity import EARLIER, SECONDS, TYPES, engagement_at
    from features.derive import derive
    from samepage.records import RecordStore
    try:
        from serving.explain import explain_columns
    except ImportError:  # an older checkout (for a before/after run): explain on a frame
        from serving.explain import explain

        def explain_columns(bundle: Any, defs: Any, cols: Any, X: Any) -> Any:
            return explain(bundle, defs, pd.DataFrame(dict(zip(bundle.feature_keys, cols, strict=True))))

    from serving.mql import verdict
    from serving.scorer import Scorer
    from serving.topass import to_pass
    from serving.writer import ScoreWriter

    records = RecordStore.from_settings(settings)
    writer = ScoreWriter(records)
    scorer = Scorer(settings, defs, history=writer)
    scorer.first_load()
    champ = scorer.current()
    online, bundle = champ.online, champ.bundle
    now = pd.Timestamp.now(tz="UTC")
    as_of_s = np.array([now.value / 1e9])
    as_of = np.array([now.tz_localize(None).to_datetime64()])
    feast_rows = {i: [{"lead_id": i}] for i in ids}

    def step(fn: Any) -> float:
        times = []
        for k in range(reps):
            t = time.perf_counter()
            fn(ids[k % len(ids)])
            times.append(time.perf_counter() - t)
        return 1e3 * sorted(times)[len(times) // 2]

    prepared: dict[str, Any] = {}
    for i in ids[: min(reps, len(ids))]:
        raw = online.raw([i], now)
        got = _columns(online, [i], now)
        cols = [np.asarray(got[k]) for k in bundle.feature_keys]
        X = bundle.encoder.transform_columns(cols)
        exp = explain_columns(bundle, defs, cols, X)
        values = [{c["feature"]: c["value"] for c in exp[0].contributions}]
        prepared[i] = (None, raw, cols, X, exp, values, [verdict(defs, exp[0].score, values[0])])
    out = {
        "b_feast": step(lambda i: online._store.get_online_features(features=online.refs, entity_rows=feast_rows[i])),
        "b_raw": step(lambda i: online.raw([i], now)),
        "b_columns": step(lambda i: _columns(online, [i], now)),
        "b_encode": step(lambda i: bundle.encoder.transform_columns(prepared[i][2])),
        "b_explain": step(lambda i: explain_columns(bundle, defs, prepared[i][2], prepared[i][3])),
        "b_to_pass": step(lambda i: to_pass(bundle, defs, prepared[i][3], prepared[i][6], prepared[i][5])),
        "b_trend": step(lambda i: writer.previous_scores([i])),
        "b_score": step(lambda i: scorer.score([(i, {})])),
        "b_score_1000_ms": median_ms(lambda: scorer.score([(i, {}) for i in ids]), 7),
    }
    # engagement_at and derive alone, on one lead's stored activity / raw columns
    eng = {i: prepared[i][1] for i in prepared}
    stored = {}
    for i in prepared:
        rows = [{"lead_id": i}]
        got = online._store.get_online_features(features=online.refs, entity_rows=rows).to_dict()
        stored[i] = ([got[TYPES][0]], [got[SECONDS][0]], [got[EARLIER][0]]) if TYPES in got else None
    if all(v is not None for v in stored.values()):
        out["b_engagement_at"] = step(lambda i: engagement_at(*stored[i], as_of_s, defs) if i in stored else None)
    out["b_derive"] = step(lambda i: derive(eng[i], as_of, defs, [{}], online.attribute_kinds) if i in eng else None)
    writer.close()
    records.close()
    return out


def independent_client(port: int, body_file: Path, warm: int = 100, timed: int = 500) -> dict[str, float]:
    """The issue's check: Python `http.client`, one keep-alive connection, `warm` then `timed` POST /v1/score."""
    import http.client

    bodies = [line for line in body_file.read_text().splitlines() if line.strip()]
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json", "X-API-Key": KEY}
    times = []
    for k in range(warm + timed):
        t = time.perf_counter()
        conn.request("POST", "/v1/score", bodies[k % len(bodies)], headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise SystemExit(f"independent client: /v1/score answered {resp.status}")
        if k >= warm:
            times.append(time.perf_counter() - t)
    conn.close()
    times.sort()
    return {"ic_p50": 1e3 * times[len(times) // 2], "ic_p99": 1e3 * times[int(len(times) * 0.99) - 1], "ic_max": 1e3 * times[-1]}


def mlflow_rows(frame: Any) -> tuple[list[str], list[list[Any]]]:
    """The frame as `dataframe_split` columns and rows (NaN as null)."""
    rows = [
        [None if (isinstance(v, float) and math.isnan(v)) else v for v in row]
        for row in frame.astype(object).itertuples(index=False)
    ]
    return list(frame.columns), rows


def mlflow_body(columns: list[str], rows: list[list[Any]]) -> str:
    """The body of one `/invocations` call scoring these rows."""
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows}})


def write_bodies(work: Path, defs: Any, frame: Any, ids: list[str]) -> dict[tuple[str, str], Path]:
    """JSON-lines request bodies: one lead per line (cycled through), or the 1,000-lead batch."""
    columns, rows = mlflow_rows(frame)
    files = {
        ("samepage", "single"): [json.dumps({"lead_id": i}) for i in ids],
        ("samepage", "batch"): [json.dumps({"leads": [{"lead_id": i} for i in ids]})],
        ("mlflow", "single"): [mlflow_body(columns, [r]) for r in rows],
        ("mlflow", "batch"): [mlflow_body(columns, rows)],
    }
    out = {}
    for (who, kind), lines in files.items():
        path = work / f"{who}-{kind}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        out[(who, kind)] = path
    return out


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                # /readyz answers 200 while the points rules stand in: wait for the champion itself
                if resp.status == 200 and (not url.endswith("/readyz") or json.loads(resp.read()).get("ready")):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not become ready in {timeout:.0f}s")


def post(url: str, body: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json", "X-API-Key": KEY, **(headers or {})}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def check_answers(ours: str, theirs: str, bodies: dict[tuple[str, str], Path], fresh: Callable[[], str]) -> None:
    """Both services score the same leads the same (else the comparison means nothing). /readyz reached one
    of the workers: until every worker has loaded the champion, another may still answer with the
    points rules (once seen here as a 0.87 score difference), so ask until the champion answers.
    Then both score at once, mlflow on rows read just before (`fresh`): rows read minutes earlier
    differ where a lead's age in days crossed a split since (seen: 6e-4 on the 1M workspace)."""
    deadline = time.monotonic() + 120
    while True:
        a = post(f"{ours}/v1/score/batch", bodies[("samepage", "batch")].read_text())["results"]
        if all(r["model"]["kind"] == "learned" for r in a) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    started = time.monotonic()
    theirs_body = fresh()
    a = post(f"{ours}/v1/score/batch", bodies[("samepage", "batch")].read_text())["results"]
    b = post(f"{theirs}/invocations", theirs_body)["predictions"]
    apart = time.monotonic() - started
    b_scores = [p["score"] if isinstance(p, dict) else p for p in b]
    worst = max(abs(x["score"] - y) for x, y in zip(a, b_scores, strict=True))
    print(f"both services agree on {len(a):,} leads (largest score difference {worst:.2e}; rows read {apart:.1f} s before)")


# -- load -----------------------------------------------------------------------------------------
def load(url: str, body_file: Path, clients: int, seconds: float, work: Path) -> dict[str, float]:
    if shutil.which("wrk"):
        return load_wrk(url, body_file, clients, seconds, work)
    return load_python(url, body_file, clients, seconds)


def load_wrk(url: str, body_file: Path, clients: int, seconds: float, work: Path) -> dict[str, float]:
    script = work / "bodies.lua"
    script.write_text(WRK_SCRIPT)
    cmd = [
        "wrk",
        "-t1",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
        "--",
        str(body_file),
        KEY,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    pct = {int(m.group(1)): _ms(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+\w+)", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} failed requests under load\n{out}")
    return {"p50": pct[50], "p99": pct[99], "rps": rps}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def load_python(url: str, body_file: Path, clients: int, seconds: float) -> dict[str, float]:
    """Fallback generator without wrk: `clients` keep-alive connections in a child process."""
    code = r"""
import http.client, json, sys, threading, time, urllib.parse
url, path, clients, seconds, key = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
bodies = [l.encode() for l in open(path) if l.strip()]
u = urllib.parse.urlparse(url); lat = []; stop = time.monotonic() + seconds
def run(k):
    c = http.client.HTTPConnection(u.hostname, u.port); i = k
    while time.monotonic() < stop:
        t = time.perf_counter(); c.request("POST", u.path, bodies[i % len(bodies)], {"Content-Type": "application/json", "X-API-Key": key})
        r = c.getresponse(); r.read(); assert r.status == 200, r.status; lat.append(time.perf_counter() - t); i += 1
ts = [threading.Thread(target=run, args=(k,)) for k in range(clients)]; t0 = time.monotonic()
[t.start() for t in ts]; [t.join() for t in ts]; lat.sort()
print(json.dumps({"p50": 1e3 * lat[len(lat) // 2], "p99": 1e3 * lat[int(len(lat) * 0.99)], "rps": len(lat) / (time.monotonic() - t0)}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code, url, str(body_file), str(clients), str(seconds), KEY],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- report ---------------------------------------------------------------------------------------
def print_table(
    rows: list[tuple[str, str, dict[str, float], dict[str, float]]], contrib: dict[str, float], args: argparse.Namespace
) -> None:
    load1 = os.getloadavg()[0]
    print(
        f"\nloopback, {os.cpu_count()} cores, load average {load1:.1f}; {'wrk' if shutil.which('wrk') else 'python'} load generator, {args.seconds:.0f}s per run; samepage workers {args.workers or os.cpu_count()}, mlflow 1"
    )
    print(f"{'request':<12} {'service':<9} {'p50 ms (1)':>10} {'p99 ms (1)':>10} {'req/s (16)':>11} {'p99 ms (16)':>11}")
    for label, who, one, many in rows:
        print(f"{label:<12} {who:<9} {one['p50']:>10.2f} {one['p99']:>10.2f} {many['rps']:>11.1f} {many['p99']:>11.2f}")
    by = {(label, who): (one, many) for label, who, one, many in rows}
    for label in ("1 lead", "1,000 leads"):
        ours, theirs = by[(label, "samepage")], by[(label, "mlflow")]
        target = " (targets: p99 ≤ 5 ms, ≥ 5x)" if label == "1 lead" else ""
        print(
            f"{label}: samepage p99 at 1 client {ours[0]['p99']:.2f} ms; samepage/mlflow req/s at 16 clients "
            f"{ours[1]['rps'] / theirs[1]['rps']:.2f}x{target}"
        )
    batch_p50 = by[("1,000 leads", "samepage")][0]["p50"]
    c = contrib
    print(
        f"\n{c['rows']:,} rows, {c['trees']} trees x {c['features']} features: LightGBM pred_contrib alone {c['pred_contrib_ms']:.1f} ms; "
        f"samepage explain {c['explain_ms']:.1f} ms ({c['explain_ms'] / c['pred_contrib_ms']:.2f}x); "
        f"/v1/score/batch end to end p50 {batch_p50:.1f} ms ({batch_p50 / c['pred_contrib_ms']:.2f}x; target ≤ 1.5x); "
        f"Scorer.score in-process {c['b_score_1000_ms']:.1f} ms ({c['b_score_1000_ms'] / c['pred_contrib_ms']:.2f}x)"
    )
    print(
        f"online read of the same {c['rows']:,} leads: Feast get_online_features alone {c['feast_ms']:.1f} ms; "
        f"samepage's read (the store's read + columns + engagement_at) {c['raw_ms']:.1f} ms; with the derivation "
        f"{c['online_ms']:.1f} ms (target ≤ 40 ms)"
    )
    one_p50 = by[("1 lead", "samepage")][0]["p50"]
    steps = [
        ("Feast get_online_features", "b_feast"),
        ("online read (the store's read + columns + engagement_at)", "b_raw"),
        ("  of which engagement_at alone", "b_engagement_at"),
        ("online read + derivation (OnlineFeatures.columns)", "b_columns"),
        ("  of which derive alone", "b_derive"),
        ("encode (once, shared by explain and to_pass)", "b_encode"),
        ("explain (pred_contrib, 1 thread, + reasons)", "b_explain"),
        ("to_pass search", "b_to_pass"),
        ("trend look-up (previous score)", "b_trend"),
        ("Scorer.score, whole", "b_score"),
    ]
    print("\none lead, in-process p50 (each step timed alone):")
    for label, key in steps:
        if key in c:
            print(f"  {label:<52} {c[key]:6.3f} ms")
    print(
        f"  {'HTTP + middleware (1-client p50 - Scorer.score p50)':<52} {one_p50 - c['b_score']:6.3f} ms "
        f"(targets: Scorer.score ≤ 1.5 ms, HTTP ≤ 1 ms)"
    )
    print(
        f"independent client (http.client, 1 keep-alive connection, 100 warm-up + 500): p50 {c['ic_p50']:.2f} ms, "
        f"p99 {c['ic_p99']:.2f} ms, max {c['ic_max']:.2f} ms (target p99 ≤ 5 ms)"
    )


if __name__ == "__main__":
    main()

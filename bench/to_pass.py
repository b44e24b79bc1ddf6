"""What `mql.to_pass` costs: batch scoring of 1,000 leads with the search beside the same scoring without it.

    .venv/bin/python bench/to_pass.py [--home DIR] [--leads N] [--reps R]

Bootstraps a demo workspace if DIR has no champion (demo leads up to today → features → train),
then scores the 1,000 newest leads with `Scorer.score` (online features, explanation, verdict,
grade, trend) R times with the search and R times without (`suggest=False`), interleaved, and
prints the medians and their ratio (the issue's bound: within 2x). It also times the worst case,
where every lead is searched (each lead's features kept, the threshold raised to 0.99 so that
no lead is an MQL), says how many leads and candidate rows each call rescored, and times one
searched lead at a time (as `POST /v1/score` scores it) with and without the search.
Not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ensure_workspace  # bench/common.py (this folder is on the path)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "samepage-bench-topass")
    parser.add_argument("--leads", type=int, default=3_000, help="Demo leads when bootstrapping")
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()

    from samepage.definitions import load_definitions
    from samepage.records import RecordStore
    from samepage.settings import Settings
    from samepage.tables import read_tables
    from serving.scorer import Scorer
    from serving.topass import BUDGET, combinations, steps

    defs = load_definitions(REPO / "configs" / "definitions.yaml")
    settings = Settings(home=args.home, definitions=REPO / "configs" / "definitions.yaml", _env_file=None)
    import pandas as pd

    # Demo leads up to today; a small demo is too few outcomes for LightGBM to clear the quality floor,
    # and the bench needs a LightGBM champion.
    end = pd.Timestamp.now(tz="UTC").floor("D")
    ensure_workspace(settings, defs, args.leads, seed=7, end=end, num_boost_round=80, quality_floor=False, kind="lightgbm")
    leads = read_tables(settings.data_dir).leads.sort_values("created_at")
    pairs: list[tuple[str, dict[str, Any]]] = [(str(i), {}) for i in leads["lead_id"].tolist()[-1000:]]
    m = len(combinations(len(steps(defs, defs.feature_keys)), BUDGET))
    print(f"{len(pairs):,} newest leads; {m} candidate combinations of up to {BUDGET} events per searched lead")
    store = RecordStore.from_settings(settings)  # trend: each lead's previous score, as the service reads it
    for name, d in (("newest leads", defs), ("worst case: every lead searched", worst(defs))):
        scorer = Scorer(settings, d, history=store)
        scorer.refresh()
        if scorer.champion is None or not scorer.champion.registered:
            raise SystemExit(f"no champion: {scorer.reason}")
        scorer.score(pairs)  # warm: Feast, the encoder, LightGBM
        results = scorer.score(pairs)
        searched = sum(1 for r in results if r["mql"]["to_pass"] or "No small change" in r["mql"]["summary"])
        with_s, without_s = [], []
        for _ in range(args.reps):
            without_s.append(timed(lambda sc=scorer: sc.score(pairs, suggest=False)))
            with_s.append(timed(lambda sc=scorer: sc.score(pairs)))
        a, b = statistics.median(with_s), statistics.median(without_s)
        found = sum(1 for r in results if r["mql"]["to_pass"])
        print(
            f"{name}: {searched:,} leads searched ({searched * m:,} candidate rows in one model call), "
            f"{found:,} with a next step; batch of {len(pairs):,}: {b * 1000:.0f} ms without to_pass, "
            f"{a * 1000:.0f} ms with it: {a / b:.2f}x (median of {args.reps})"
        )
        if d is defs:  # one lead at a time, as POST /v1/score: the leads that were searched
            one = [(r["lead_id"], {}) for r in results if r["mql"]["to_pass"] or "No small change" in r["mql"]["summary"]][:100]
            alone, bare = [], []
            for pair in one * 3:
                bare.append(timed(lambda sc=scorer, p=pair: sc.score([p], suggest=False)))
                alone.append(timed(lambda sc=scorer, p=pair: sc.score([p])))
            print(
                f"one searched lead at a time ({len(one)} leads x 3): p50 {statistics.median(bare) * 1000:.2f} ms without "
                f"to_pass, {statistics.median(alone) * 1000:.2f} ms with it"
            )


def worst(defs: Any) -> Any:
    """The threshold at 0.99: no lead is an MQL, so every lead without a failed criterion is searched."""
    return defs.model_copy(update={"mql": defs.mql.model_copy(update={"threshold": 0.99})})


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()

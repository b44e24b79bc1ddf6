"""TreeSHAP on a workspace's leads: LightGBM's `pred_contrib` against samepage's tree-by-tree path.

    .venv/bin/python bench/treeshap.py --home /tmp/samepage-bench [--rows 1000,2000,20000,100000]

Reads every lead's features as of now from the workspace's Parquet sources (as `score --all` does),
encodes them with the champion's encoder (a LightGBM champion), then for each row count times
`booster.predict(X, pred_contrib=True)` on all cores and `TreePaths.contributions(X)` (samepage's
path for batches of 700+ rows, one thread): best of three, the largest difference between the
two, and the decision patterns per tree. A measurement, not a test: figures depend on the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def best_of(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="workspace with a LightGBM champion")
    parser.add_argument("--rows", default="1000,2000,20000,100000", help="row counts, comma-separated")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from features.offline import ChunkFeatures, Sources, lead_chunks
    from samepage.definitions import load_definitions
    from samepage.settings import Settings
    from samepage.treepaths import TreePaths
    from serving.scorer import Scorer

    settings = Settings(home=args.home, _env_file=None)
    defs = load_definitions(settings.definitions)
    scorer = Scorer(settings, defs)
    scorer.refresh()
    bundle = scorer.champion.bundle if scorer.champion is not None else None
    booster = getattr(bundle, "booster", None)
    if bundle is None or booster is None:
        sys.exit(f"{args.home}: the champion is not a LightGBM model ({scorer.reason or type(bundle).__name__})")
    now = datetime.now(UTC)
    frames = [ChunkFeatures(f, defs) for f in lead_chunks(Sources.of(settings, defs), defs, pd.Timestamp(now), 50_000)]
    X = np.vstack([bundle.encoder.transform(c.get(c.ids, None, now)) for c in frames])
    paths = TreePaths.of(booster)
    print(f"{len(X):,} leads, {booster.num_trees()} trees, {X.shape[1]} features; cores {os.cpu_count()}")
    header = f"{'rows':>8} {'pred_contrib s':>15} {'tree by tree s':>15} {'ratio':>7} {'max |diff|':>11}"
    print(f"{header} {'patterns/tree':>14} {'load':>6}")
    for n in [int(r) for r in args.rows.split(",")]:
        x = X[:n]
        theirs = best_of(lambda x=x: booster.predict(x, pred_contrib=True))
        ours = best_of(lambda x=x: paths.contributions(x))
        diff = float(np.abs(paths.contributions(x) - booster.predict(x, pred_contrib=True)).max())
        patterns = paths.patterns(x)
        print(
            f"{len(x):>8,} {theirs:>15.3f} {ours:>15.3f} {ours / theirs:>7.2f} {diff:>11.1e} "
            f"{np.mean(patterns):>8.0f} mean {os.getloadavg()[0]:>6.2f}"
        )


if __name__ == "__main__":
    main()

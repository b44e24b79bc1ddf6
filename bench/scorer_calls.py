"""`Scorer.score` in-process on a workspace: single leads and a batch of 1,000, p50.

    .venv/bin/python bench/scorer_calls.py --home <workspace> [--repo <another checkout>]

`--repo` runs another checkout's code (say `git worktree add /tmp/before <rev>`) on the same
workspace and definitions, so before and after can be interleaved in one sitting. 300 single leads
and 9 batches of the same 1,000 (after a warm-up); the record store is not written. A measurement,
not a test: figures depend on the load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="workspace with a champion")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose code scores (default: this one)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))
    from samepage.definitions import load_definitions
    from samepage.settings import Settings
    from samepage.tables import read_tables
    from serving.scorer import Scorer

    settings = Settings(home=args.home, definitions=REPO / "configs" / "definitions.yaml", _env_file=None)
    defs = load_definitions(settings.definitions)
    scorer = Scorer(settings, defs)
    scorer.refresh()
    ids = read_tables(settings.data_dir).leads["lead_id"].astype(str).sample(1000, random_state=1).tolist()
    batch: list[tuple[str, dict[str, object]]] = [(i, {}) for i in ids]
    for lead in batch[:50]:
        scorer.score([lead])
    for _ in range(3):
        scorer.score(batch)
    one = []
    for lead in batch[:300]:
        started = time.perf_counter()
        scorer.score([lead])
        one.append(time.perf_counter() - started)
    many = []
    for _ in range(9):
        started = time.perf_counter()
        scorer.score(batch)
        many.append(time.perf_counter() - started)
    one_ms, many_ms = statistics.median(one) * 1000, statistics.median(many) * 1000
    print(f"{args.repo}: 1 lead p50 {one_ms:.3f} ms, 1,000 leads p50 {many_ms:.1f} ms")


if __name__ == "__main__":
    main()

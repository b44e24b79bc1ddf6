"""What the benchmark scripts share: a workspace with a champion, and a free loopback port.

Imported by the scripts as a sibling module (`python bench/<script>.py` puts this folder on the path).
"""

from __future__ import annotations

import socket
from typing import Any


def ensure_workspace(
    settings: Any, defs: Any, n_leads: int, *, seed: int = 0, end: Any = None, note: str = "", **train_options: Any
) -> None:
    """A workspace with a champion: the one at `settings.home`, or bootstrapped there (demo → features → train).

    `seed` and `end` shape the demo data; `train_options` go to `training.pipeline.train` (e.g. a LightGBM
    champion whatever wins); `note` is added to the "reusing" line (e.g. "served from a copy").
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if (settings.home_dir / "mlflow.db").exists():
        try:
            MlflowClient(tracking_uri=settings.tracking_uri).get_model_version_by_alias("sql_likelihood", "champion")
            print(f"workspace {settings.home_dir}: reusing its champion{f' ({note})' if note else ''}")
            return
        except MlflowException:
            pass
    from features.store import build_features
    from samepage.demo import write_demo
    from samepage.tables import has_data
    from training.pipeline import train

    print(f"workspace {settings.home_dir}: bootstrapping ({n_leads:,} demo leads → features → train)")
    if not has_data(settings.data_dir):
        write_demo(settings, defs, n_leads=n_leads, seed=seed, **({} if end is None else {"end": end}))
    build_features(settings, defs, progress=False)
    train(settings, defs, progress=False, **train_options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

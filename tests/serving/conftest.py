"""A real workspace for the service tests, built once per session: demo data → Feast → champion.

The champion comes from the real training pipeline; the helpers below also register extra
versions (a retrained bundle, one under other definitions) to test reloads and readiness.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from samepage.bundle import BundlePyfunc, FeatureEncoder, ModelBundle
from samepage.definitions import Definitions
from samepage.settings import Settings
from serving.app import create_app
from tests.conftest import DEFINITIONS_FILE

if TYPE_CHECKING:
    from training.pipeline import TrainResult

API_KEYS = ("test-key-alpha", "test-key-beta")
AUTH = {"Authorization": f"Bearer {API_KEYS[0]}"}
N_DEMO_LEADS = 2_000


@pytest.fixture(scope="session", autouse=True)
def test_client_defaults() -> Iterator[None]:
    """TestClient's Host is `testserver`, and most tests need the champion loaded before their first
    request: every app these tests build answers that name and waits for its champion at startup.
    Tests of the defaults (tests/serving/test_security.py) pass their own values."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAMEPAGE_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
        mp.setenv("SAMEPAGE_STARTUP_WAIT_SECONDS", "300")
        yield


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, definitions: Definitions) -> tuple[Settings, TrainResult]:
    """Demo data, materialized features and a champion trained by the real pipeline, with what
    training reported (`result.as_json()` is what `samepage train --json` prints)."""
    from features.store import build_features
    from samepage.demo import write_demo
    from training.pipeline import train

    settings = Settings(
        home=tmp_path_factory.mktemp("serving") / "workspace",
        definitions=DEFINITIONS_FILE,
        api_keys=",".join(API_KEYS),
        reload_seconds=0.2,
        _env_file=None,
    )
    # A workspace in use: the newest leads arrived today. With the fixed default end every lead
    # would be weeks old when the service scores it now, and few old untouched leads qualify.
    write_demo(settings, definitions, n_leads=N_DEMO_LEADS, seed=7, end=pd.Timestamp.now(tz="UTC").floor("D"))
    build_features(settings, definitions, progress=False)
    # 2,000 demo leads are too few for LightGBM to beat the points rules beyond chance, so the
    # quality floor would (rightly) promote nothing; these tests need a LightGBM champion to serve.
    result = train(settings, definitions, progress=False, num_boost_round=80, quality_floor=False, kind="lightgbm")
    return settings, result


@pytest.fixture(scope="session")
def workspace(trained: tuple[Settings, TrainResult]) -> Settings:
    """The trained session workspace (see `trained`)."""
    return trained[0]


@pytest.fixture
def own_workspace(workspace: Settings, tmp_path: Path) -> Settings:
    """A copy of the session workspace for tests that move the champion alias or add feedback."""
    home = tmp_path / "workspace"
    shutil.copytree(workspace.home_dir, home)
    return workspace.model_copy(update={"home": home})


@pytest.fixture(scope="module")
def own_workspace_module(workspace: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Like `own_workspace`, shared by one module."""
    home = tmp_path_factory.mktemp("own") / "workspace"
    shutil.copytree(workspace.home_dir, home)
    return workspace.model_copy(update={"home": home})


@pytest.fixture(scope="session")
def demo_leads(workspace: Settings) -> pd.DataFrame:
    from samepage.tables import read_tables

    return read_tables(workspace.data_dir).leads


@pytest.fixture(scope="module")
def client(workspace: Settings, definitions: Definitions) -> Iterator[TestClient]:
    """The real app over the session workspace (lifespan run: champion, Feast, record store loaded)."""
    app = create_app(workspace, definitions, access_log=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def lead_ids(leads: pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [str(x) for x in rng.choice(leads["lead_id"].astype(str).to_numpy(), size=n, replace=False)]


# -- registering extra versions -----------------------------------------------------------------
def train_bundle(frame: pd.DataFrame, defs: Definitions, y: np.ndarray, rounds: int = 20, seed: int = 0) -> ModelBundle:
    """A small LightGBM bundle on a feature frame (tests of reloads need a second, different model)."""
    cats = [f.key for f in defs.features if f.is_categorical]
    enc = FeatureEncoder.fit(frame, defs.feature_keys, cats)
    X = enc.transform(frame)
    params = {"objective": "binary", "verbosity": -1, "num_leaves": 7, "min_data_in_leaf": 5, "seed": seed, "num_threads": 1}
    ds = lgb.Dataset(X, y, categorical_feature=enc.categorical_indices, free_raw_data=False)
    booster = lgb.train(params, ds, num_boost_round=rounds)
    return ModelBundle(enc, booster, calib_a=0.8, calib_b=-0.1)


def register_bundle(settings: Settings, bundle: ModelBundle, tags: dict[str, str], alias: bool = True) -> str:
    """Log a bundle as the project's pyfunc, register it, tag it, and (optionally) make it champion."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        folder = bundle.save(Path(tmp) / "bundle")
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(
                name="model", python_model=BundlePyfunc(), artifacts={"bundle": str(folder)}, pip_requirements=[]
            )
            mlflow.log_metric("test_roc_auc", 0.5)
    mv = mlflow.register_model(info.model_uri, "sql_likelihood")
    for k, v in tags.items():
        client.set_model_version_tag("sql_likelihood", mv.version, k, v)
    if alias:
        client.set_registered_model_alias("sql_likelihood", "champion", mv.version)
    _ = run
    return str(mv.version)


def champion_tags(settings: Settings) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    return dict(client.get_model_version_by_alias("sql_likelihood", "champion").tags)


def score_body(lead_id: str, **attributes: Any) -> dict[str, Any]:
    return {"lead_id": lead_id, "attributes": attributes}

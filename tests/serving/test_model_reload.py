"""Readiness against the definitions, and following the champion alias without a restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from fastapi.testclient import TestClient

from samepage.definitions import Definitions, load_definitions
from samepage.settings import Settings
from serving.app import create_app
from tests.conftest import DEFINITIONS_FILE
from tests.serving.conftest import AUTH, champion_tags, lead_ids, register_bundle, train_bundle
from tests.serving.test_api import assert_error


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_readiness_refuses_a_champion_trained_under_other_definitions(
    own_workspace: Settings, definitions: Definitions, demo_leads: pd.DataFrame
) -> None:
    tags = {**champion_tags(own_workspace), "fingerprint": "00000000deadbeef", "definitions_version": "0.9.0+aaaaaaaaaaaa"}
    frame = pd.DataFrame({k: [np.nan] * 40 for k in definitions.feature_keys})
    version = register_bundle(own_workspace, train_bundle(frame, definitions, np.arange(40) % 2, rounds=2), tags)
    with TestClient(create_app(own_workspace, definitions, access_log=False), raise_server_exceptions=False) as client:
        # Cold start: not ready (with the reason), but answering with the team's points rules.
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is False and ready.json()["model"]["kind"] == "rules"
        reason = ready.json()["reason"]
        assert f"v{version}" in reason and "0.9.0+aaaaaaaaaaaa" in reason and definitions.fingerprint in reason
        scored = client.post("/v1/score", json={"lead_id": lead_ids(demo_leads, 1)[0]}, headers=AUTH).json()
        rules = {"name": "points_rules", "version": definitions.version_string, "kind": "rules", "calibrated": False}
        assert scored["model"] == rules
        model = client.get("/v1/model", headers=AUTH).json()
        assert model["kind"] == "rules" and "other label/feature definitions" in model["reason"]
        assert "samepage_ready 0.0" in client.get("/metrics").text


def test_readiness_refuses_when_the_definitions_changed_under_the_champion(workspace: Settings, tmp_path: Path) -> None:
    data = yaml.safe_load(DEFINITIONS_FILE.read_text())
    data["label"]["window_days"] = 90  # a retrain-worthy change: the label means something else now
    changed_file = tmp_path / "definitions.yaml"
    changed_file.write_text(yaml.safe_dump(data, sort_keys=False))
    changed = load_definitions(changed_file)
    settings = workspace.model_copy(update={"definitions": changed_file})
    with TestClient(create_app(settings, changed, access_log=False), raise_server_exceptions=False) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and not ready.json()["ready"] and changed.fingerprint in ready.json()["reason"]
        cold = client.post("/v1/score", json={"lead_id": "x", "attributes": {"industry": "Retail"}}, headers=AUTH)
        assert cold.status_code == 200 and cold.json()["model"]["kind"] == "rules"
        # A threshold change alone is not a retrain: the same champion stays usable.
    data = yaml.safe_load(DEFINITIONS_FILE.read_text())
    data["mql"]["threshold"] = 0.5
    threshold_file = tmp_path / "threshold.yaml"
    threshold_file.write_text(yaml.safe_dump(data, sort_keys=False))
    relaxed = load_definitions(threshold_file)
    with TestClient(
        create_app(workspace.model_copy(update={"definitions": threshold_file}), relaxed, access_log=False)
    ) as client:
        assert client.get("/readyz").status_code == 200
        body = client.post("/v1/score", json={"lead_id": "x", "attributes": {"industry": "Retail"}}, headers=AUTH).json()
        assert body["mql"]["threshold"] == 0.5 and body["definitions_version"] == relaxed.version_string


def test_no_champion_is_not_ready(tmp_path: Path, definitions: Definitions) -> None:
    settings = Settings(home=tmp_path / "empty", definitions=DEFINITIONS_FILE, api_keys="k", _env_file=None)
    with TestClient(create_app(settings, definitions, access_log=False), raise_server_exceptions=False) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "no champion" in ready.json()["reason"]
        assert_error(
            client.post("/v1/score", json={"lead_id": "x"}, headers={"X-API-Key": "k"}), 503, "not_ready", "samepage train"
        )
        assert client.get("/healthz").status_code == 200


def test_a_new_champion_is_picked_up_without_failing_requests(
    own_workspace: Settings, definitions: Definitions, demo_leads: pd.DataFrame
) -> None:
    ids = lead_ids(demo_leads, 200, seed=4)
    with TestClient(create_app(own_workspace, definitions, access_log=False), raise_server_exceptions=False) as client:
        old = client.get("/readyz").json()["model"]["version"]
        scorer = client.app.state.scorer
        frame = scorer.champion.online.get(ids, [{}] * len(ids), pd.Timestamp.now(tz="UTC"))[definitions.feature_keys]
        y = (np.nan_to_num(frame["page_views_90d"].to_numpy(dtype=float)) > 2).astype(int)
        new_bundle = train_bundle(frame, definitions, y, rounds=15, seed=3)

        statuses: list[int] = []
        stop = threading.Event()

        def hammer() -> None:
            i = 0
            while not stop.is_set():
                statuses.append(client.post("/v1/score", json={"lead_id": ids[i % len(ids)]}, headers=AUTH).status_code)
                i += 1

        worker = threading.Thread(target=hammer)
        worker.start()
        try:
            new = register_bundle(own_workspace, new_bundle, champion_tags(own_workspace))
            assert new != old
            assert wait_for(lambda: client.get("/readyz").json()["model"]["version"] == new)
            time.sleep(0.3)
        finally:
            stop.set()
            worker.join()
        assert statuses and set(statuses) == {200}
        got = client.post("/v1/score/batch", json={"leads": [{"lead_id": i} for i in ids[:50]]}, headers=AUTH).json()["results"]
        assert {r["model"]["version"] for r in got} == {new}
        expected = new_bundle.predict_proba(frame.iloc[:50])
        np.testing.assert_allclose([r["score"] for r in got], expected, atol=1e-6)
        assert client.get("/v1/model", headers=AUTH).json()["version"] == new


def test_a_champion_that_cannot_load_leaves_the_previous_one_serving(
    own_workspace: Settings, definitions: Definitions, demo_leads: pd.DataFrame
) -> None:
    from mlflow.tracking import MlflowClient

    lead_id = lead_ids(demo_leads, 1, seed=12)[0]
    with TestClient(create_app(own_workspace, definitions, access_log=False), raise_server_exceptions=False) as client:
        old = client.get("/readyz").json()["model"]["version"]
        registry = MlflowClient(tracking_uri=own_workspace.tracking_uri, registry_uri=own_workspace.tracking_uri)
        broken = registry.create_model_version(
            "sql_likelihood", source=str(own_workspace.home_dir / "no-such-model"), tags=champion_tags(own_workspace)
        )
        registry.set_registered_model_alias("sql_likelihood", "champion", broken.version)
        metrics = client.app.state.metrics
        assert wait_for(
            lambda: (metrics.registry.get_sample_value("samepage_model_reloads_total", {"outcome": "failed"}) or 0) >= 1
        )
        assert client.get("/readyz").json()["model"]["version"] == old
        assert client.post("/v1/score", json={"lead_id": lead_id}, headers=AUTH).json()["model"]["version"] == old

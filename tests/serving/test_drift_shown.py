"""The champion's drift check from training is what GET /v1/model, GET /v1/report and /report say."""

from __future__ import annotations

from html import unescape

from fastapi.testclient import TestClient

from samepage.definitions import Definitions
from samepage.settings import Settings
from serving.app import create_app
from tests.serving.conftest import AUTH, champion_tags, register_bundle
from tests.serving.test_model_reload import wait_for


def test_the_champions_drift_warnings_are_shown(own_workspace: Settings, definitions: Definitions) -> None:
    with TestClient(create_app(own_workspace, definitions, access_log=False), raise_server_exceptions=False) as client:
        bundle = client.app.state.scorer.current().bundle  # type: ignore[attr-defined]
        warning = "employees shifted: PSI 3.10 between the newest leads and the history (> 0.25)"
        drift = {
            "basis": "the newest slice against the rows before it",
            "base_rate": {"train": 0.1, "recent": 0.3},
            "features": [{"feature": "employees", "psi": 3.1, "out_of_range_share": 0.6}],
            "warnings": [warning, "base rate changed: 10.0% in the history, 30.0% in the newest period"],
        }
        bundle.meta = {**bundle.meta, "drift": drift}
        new = register_bundle(own_workspace, bundle, champion_tags(own_workspace))
        assert wait_for(lambda: client.get("/readyz").json()["model"]["version"] == new)

        assert client.get("/v1/model", headers=AUTH).json()["drift"] == drift
        assert client.get("/v1/report", headers=AUTH).json()["drift"] == drift
        page = unescape(client.get("/report").text)
        assert 'id="drift"' in page and warning in page

"""Cold start and model kinds: without a champion the team's points rules score, and every answer says which kind scored."""

from __future__ import annotations

from html import unescape

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from samepage.bundle import Bundle, PointsBundle
from samepage.definitions import Definitions
from samepage.linear import fit_logreg_bundle
from samepage.settings import Settings
from serving.app import create_app
from serving.batch import score_file
from tests.serving.conftest import AUTH, champion_tags, lead_ids, register_bundle
from tests.serving.test_api import assert_exact
from tests.serving.test_model_reload import wait_for
from tests.serving.test_pages import page_path


def features_of(client: TestClient, definitions: Definitions, ids: list[str]) -> pd.DataFrame:
    """The feature rows the service scores these leads from (its own online features, as of now)."""
    online = client.app.state.scorer.champion.online  # type: ignore[attr-defined]
    return online.get(ids, [{}] * len(ids), pd.Timestamp.now(tz="UTC"))[definitions.feature_keys]


def scored(client: TestClient, ids: list[str]) -> list[dict]:
    resp = client.post("/v1/score/batch", json={"leads": [{"lead_id": i} for i in ids]}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def test_without_a_champion_the_points_rules_score_and_say_so(
    own_workspace: Settings, definitions: Definitions, demo_leads: pd.DataFrame
) -> None:
    registry = MlflowClient(tracking_uri=own_workspace.tracking_uri, registry_uri=own_workspace.tracking_uri)
    version = registry.get_model_version_by_alias("sql_likelihood", "champion").version
    registry.delete_registered_model_alias("sql_likelihood", "champion")
    ids = lead_ids(demo_leads, 30, seed=21)
    with TestClient(create_app(own_workspace, definitions, access_log=False), raise_server_exceptions=False) as client:
        ready = client.get("/readyz")
        body = ready.json()
        assert ready.status_code == 200 and body["ready"] is False
        assert "points rules" in body["reason"] and "no champion" in body["reason"]
        rules_ref = {"name": "points_rules", "version": definitions.version_string, "kind": "rules", "calibrated": False}
        assert body["model"] == rules_ref

        results = scored(client, ids)
        assert all(r["model"] == rules_ref for r in results)
        # Each feature's push is exactly its rules' points on the scale, in the definitions' words.
        expected = PointsBundle.from_definitions(definitions)
        X = expected.encoder.transform(features_of(client, definitions, ids))
        base, contrib = expected.contributions(X)
        for i, r in enumerate(results):
            assert_exact(r)
            assert r["explanation"]["base_value"] == pytest.approx(base[i])
            got = {c["feature"]: c["contribution"] for c in r["explanation"]["contributions"]}
            assert got == pytest.approx(dict(zip(expected.feature_keys, contrib[i], strict=True)))
            assert all(c["label"] == definitions.feature(c["feature"]).label for c in r["explanation"]["contributions"])
        assert any(r["explanation"]["reasons_up"] for r in results)

        model = client.get("/v1/model", headers=AUTH).json()
        assert (model["kind"], model["calibrated"], model["algorithm"], model["alias"]) == ("rules", False, "points", None)
        assert "no champion" in model["reason"] and model["fingerprint"] == definitions.fingerprint

        page = unescape(client.get(page_path(ids[0])).text)
        assert "Scored by the team's points rules (no model yet)" in page
        assert definitions.points is not None
        assert definitions.points.rules[0].label in page  # the rules themselves are on the page

        metrics = client.get("/metrics").text
        assert "samepage_ready 0.0" in metrics and 'name="points_rules"' in metrics

        # Batch scoring does not care which kind scores either.
        source, out = own_workspace.home_dir / "few.csv", own_workspace.home_dir / "few-scored.csv"
        source.write_text("lead_id\n" + "\n".join(ids[:5]) + "\n")
        score_file(own_workspace, definitions, source, out, progress=False)
        batch = pd.read_csv(out)
        assert set(batch["model_name"]) == {"points_rules"}
        np.testing.assert_allclose(batch["score"], [r["score"] for r in results[:5]], atol=1e-6)

        # A champion appears: the next answers come from it, and say so.
        registry.set_registered_model_alias("sql_likelihood", "champion", version)
        assert wait_for(lambda: client.get("/readyz").json()["ready"] is True)
        learned = scored(client, ids[:3])
        assert {r["model"]["kind"] for r in learned} == {"learned"} and all(r["model"]["calibrated"] for r in learned)
        page = unescape(client.get(page_path(ids[1])).text)
        assert "no model yet" not in page


def test_registered_bundles_of_every_kind_report_kind_and_stay_exact(
    own_workspace: Settings, definitions: Definitions, demo_leads: pd.DataFrame
) -> None:
    ids = lead_ids(demo_leads, 300, seed=22)
    tags = champion_tags(own_workspace)
    with TestClient(create_app(own_workspace, definitions, access_log=False), raise_server_exceptions=False) as client:
        frame = features_of(client, definitions, ids)
        y = (np.nan_to_num(frame["page_views_90d"].to_numpy(dtype=float)) > 2).astype(int)
        cases: list[tuple[Bundle, str, str]] = [
            (PointsBundle.fit(definitions, frame, y), "rules", "points"),
            (fit_logreg_bundle(definitions, frame, y), "learned", "logreg"),
        ]
        for bundle, kind, algorithm in cases:
            new = register_bundle(own_workspace, bundle, tags)
            assert wait_for(lambda new=new: client.get("/readyz").json()["model"]["version"] == new)
            results = scored(client, ids[:40])
            refs = {(r["model"]["name"], r["model"]["kind"], r["model"]["calibrated"]) for r in results}
            assert refs == {("sql_likelihood", kind, True)}
            for r in results:
                assert_exact(r)
            # The same model on the same features (recency moves by the seconds between the two reads).
            np.testing.assert_allclose([r["score"] for r in results], bundle.predict_proba(frame.iloc[:40]), atol=1e-6)
            model = client.get("/v1/model", headers=AUTH).json()
            assert (model["kind"], model["algorithm"], model["calibrated"]) == (kind, algorithm, True)
            assert client.get("/readyz").json()["ready"] is True


def test_leads_outside_the_training_range_are_counted(
    own_workspace: Settings, definitions: Definitions, demo_leads: pd.DataFrame
) -> None:
    ids = lead_ids(demo_leads, 200, seed=23)
    with TestClient(create_app(own_workspace, definitions, access_log=False), raise_server_exceptions=False) as client:
        frame = features_of(client, definitions, ids)
        y = (np.nan_to_num(frame["page_views_90d"].to_numpy(dtype=float)) > 2).astype(int)
        bundle = fit_logreg_bundle(definitions, frame, y)
        cut = float(np.nanmedian(frame["employees"].to_numpy(dtype=float)))
        bundle.meta["feature_ranges"] = {"employees": [0.0, cut], "industry": ["not", "numeric"], "page_views_90d": [0.0, 1e9]}
        new = register_bundle(own_workspace, bundle, champion_tags(own_workspace))
        assert wait_for(lambda: client.get("/readyz").json()["model"]["version"] == new)
        metrics = client.app.state.metrics  # type: ignore[attr-defined]

        def counted(feature: str) -> float:
            # The first champion carries training's own ranges, so earlier scoring may have counted.
            return metrics.registry.get_sample_value("samepage_out_of_range_features_total", {"feature": feature}) or 0.0

        scored(client, ids)  # a first call: in the full suite it counted 2 more than it scored (not yet explained)
        before = {f: counted(f) for f in ("employees", "page_views_90d")}
        results = scored(client, ids)
        # What the service scored each lead with (its explanation carries every feature's value).
        seen = [next(c["value"] for c in r["explanation"]["contributions"] if c["feature"] == "employees") for r in results]
        above = sum(1 for v in seen if v is not None and not 0.0 <= float(v) <= cut)  # outside [0, cut]
        assert above > 0
        frame_after = features_of(client, definitions, ids)["employees"].to_numpy(dtype=float)
        detail = (
            f"{len(results)} results for {len(ids)} ids ({len(set(ids))} distinct); explanations above {above}, "
            f"online frame above {int((frame_after > cut).sum())}, below 0 {int((frame_after < 0).sum())}; cut {cut}; "
            f"values seen {sorted(v for v in seen if v is not None)[-5:]}; "
            f"ranges {client.app.state.scorer.current().training_ranges}"
        )
        assert counted("employees") - before["employees"] == above, detail
        assert counted("page_views_90d") == before["page_views_90d"]
        assert "samepage_out_of_range_features_total" in client.get("/metrics").text

"""The definitions preview on the trained session workspace: `samepage definitions preview` agrees with
`samepage train --json`; the /definitions page shows the vocabulary and the preview; the report's
calibration panel shows the champion's out-of-time predictions until live scores have outcomes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from samepage.changes import Preview
from samepage.cli import app as cli
from samepage.definitions import Definitions, load_definitions
from samepage.holdout import champion_holdout
from samepage.settings import Settings
from serving.app import create_app
from tests.conftest import DEFINITIONS_FILE
from tests.serving.conftest import AUTH

if TYPE_CHECKING:
    from training.pipeline import TrainResult

NEW_FEATURE = {
    "key": "pricing_views_7d", "kind": "event_count", "event_type": "pricing_page_view", "window_days": 7,
    "direction": "up", "group": "engagement", "label": "Pricing page views in the last 7 days",
}  # fmt: skip


def proposed_file(folder: Path, name: str, threshold: float | None = None, feature: bool = False) -> Path:
    data = yaml.safe_load(DEFINITIONS_FILE.read_text())
    if threshold is not None:
        data["mql"]["threshold"] = threshold
    if feature:
        data["features"].append(NEW_FEATURE)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def preview_cli(settings: Settings, path: Path, *flags: str) -> str:
    env = {"SAMEPAGE_HOME": str(settings.home_dir), "SAMEPAGE_DEFINITIONS": str(DEFINITIONS_FILE)}
    result = CliRunner().invoke(cli, ["definitions", "preview", "--proposed", str(path), *flags], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_threshold_moved_to_trains_gives_trains_expected_mqls_and_no_retrain(
    trained: tuple[Settings, TrainResult], tmp_path: Path
) -> None:
    settings, result = trained
    printed = json.loads(json.dumps(result.as_json(), default=str))  # what `samepage train --json` prints
    path = proposed_file(tmp_path, "moved.yaml", threshold=printed["threshold"]["value"])
    body = json.loads(preview_cli(settings, path, "--json").strip().splitlines()[-1])
    assert body["expected_mql_per_week"] == printed["threshold"]["expected_mql_per_week"]
    assert body["expected_sql_rate"] == printed["threshold"]["expected_sql_rate"]
    assert body["capacity_share"] == body["expected_mql_per_week"] / load_definitions(path).sla.capacity.mqls_per_week
    assert body["retrain_needed"] is False and body["changes"][0].startswith("MQL threshold 0.35 → ")
    # The unchanged file's figure is the run's `current_threshold_*` metric.
    assert body["current"]["expected_mql_per_week"] == result.metrics["current_threshold_expected_mql_per_week"]
    words = preview_cli(settings, path)
    assert "No retrain needed" in words and "expected MQLs a week" in words


def test_an_added_feature_needs_a_retrain_and_says_why(workspace: Settings, tmp_path: Path) -> None:
    body = json.loads(preview_cli(workspace, proposed_file(tmp_path, "feature.yaml", feature=True), "--json").splitlines()[-1])
    assert body["retrain_needed"] is True
    assert any("model features" in r and "pricing_views_7d added" in r for r in body["retrain_reasons"])
    assert (
        "Feature added: “Pricing page views in the last 7 days” (pricing_views_7d, count of pricing_page_view over 7 days)."
        in body["changes"]
    )
    words = preview_cli(workspace, proposed_file(tmp_path, "feature.yaml", feature=True))
    assert "Retrain needed" in " ".join(words.split()) and "pricing_views_7d added" in " ".join(words.split())


@pytest.fixture(scope="module")
def page_client(workspace: Settings, definitions: Definitions, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app started as `samepage serve --proposed F` starts it, F moving the threshold to 0.2."""
    from samepage.cli.main import proposal

    path = proposed_file(tmp_path_factory.mktemp("proposed"), "proposed.yaml", threshold=0.2)
    with TestClient(create_app(workspace, definitions, access_log=False, proposed=proposal(workspace, definitions, path))) as c:
        yield c


def test_definitions_page_shows_the_vocabulary_and_the_preview(page_client: TestClient, definitions: Definitions) -> None:
    r = page_client.get("/definitions")
    assert r.status_code == 200
    html = r.text
    for stage in definitions.stages:
        assert f'data-stage="{stage.key}"' in html and stage.name in html
    assert 'id="mql-threshold">0.35<' in html and "The contact is not a student" in html
    assert "6 reps × 20 MQLs each" in html and "Dana Whitfield (VP Marketing), Luis Ortega (VP Sales)" in html
    for feature in definitions.features:
        assert f'data-feature="{feature.key}"' in html
    assert "MQL threshold 0.35 → 0.2 (lower: more leads pass)." in html and "No retrain needed" in html
    assert 'data-figure="expected_mql_per_week"' in html and 'href="/definitions"' in html
    assert page_client.get("/report").text.count('href="/definitions"') == 1  # in every page's navigation


def test_definitions_page_without_a_proposal_says_how(client: TestClient) -> None:
    html = client.get("/definitions").text
    assert 'id="no-proposal"' in html and "samepage serve --proposed F" in html


def test_report_calibration_shows_out_of_time_predictions_until_live_scores_have_outcomes(
    page_client: TestClient, trained: tuple[Settings, TrainResult]
) -> None:
    settings, result = trained
    recent = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=20)).date().isoformat()  # every window still open
    cal = page_client.get(f"/v1/report?start={recent}", headers=AUTH).json()["calibration"]
    holdout = champion_holdout(settings)
    assert holdout is not None and cal["source"] == "out_of_time"
    assert cal["with_outcome"] == holdout.n == result.n_test
    assert cal["roc_auc"] == pytest.approx(roc_auc_score(holdout.frame["label"], holdout.frame["score"]), abs=1e-12)
    assert cal["roc_auc"] == pytest.approx(result.metrics["test_roc_auc"], abs=1e-12)
    assert f"champion v{result.model_version}'s out-of-time predictions" in cal["source_note"]
    html = page_client.get(f"/report?start={recent}").text
    assert 'data-source="out_of_time"' in html and 'id="calibration-chart"' in html


def test_the_preview_passed_to_the_app_is_a_preview(workspace: Settings, definitions: Definitions, tmp_path: Path) -> None:
    from samepage.cli.main import proposal

    made = proposal(workspace, definitions, proposed_file(tmp_path, "p.yaml", threshold=0.5))
    assert made is not None and isinstance(made(), Preview) and proposal(workspace, definitions, None) is None


def test_a_preview_that_fails_leaves_the_page_up_and_says_so(client: TestClient) -> None:
    def broken() -> Preview:
        raise OSError("artifact store unreachable at /secret/path")

    client.app.state.proposed = broken  # type: ignore[attr-defined]
    try:
        r = client.get("/definitions")
    finally:
        client.app.state.proposed = None  # type: ignore[attr-defined]
    assert r.status_code == 200 and 'id="preview-error"' in r.text and 'id="stages"' in r.text
    assert "/secret/path" not in r.text

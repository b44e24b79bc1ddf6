"""`samepage score`: a file scored with the same champion, features, explanation and verdict as the API."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from samepage.definitions import Definitions
from samepage.records import RecordStore
from samepage.settings import Settings
from serving.batch import BatchError, score_file
from tests.serving.conftest import AUTH, lead_ids


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_scores_like_the_api(
    own_workspace: Settings, definitions: Definitions, demo_leads: pd.DataFrame, tmp_path: Path, suffix: str, client: TestClient
) -> None:
    ids = lead_ids(demo_leads, 60, seed=8)
    frame = pd.DataFrame(
        {"lead_id": ids + ["file-new-1"], "seniority": [None] * 59 + ["Student", "VP"], "employees": [None] * 60 + [300]}
    )
    src = tmp_path / f"in{suffix}"
    frame.to_csv(src, index=False) if suffix == ".csv" else frame.to_parquet(src, index=False)
    out = tmp_path / f"out{suffix}"
    summary = score_file(own_workspace, definitions, src, out, progress=False)
    assert summary.n_leads == 61 and out.exists() and "61 leads" in str(summary)
    got = pd.read_csv(out, dtype={"lead_id": str}) if suffix == ".csv" else pd.read_parquet(out)
    assert got["lead_id"].tolist() == frame["lead_id"].tolist()
    for _, row in got.iterrows():
        contributions = json.loads(row["contributions"])
        assert set(contributions) == set(definitions.feature_keys)
        logit = math.log(row["score"] / (1 - row["score"]))
        assert row["base_value"] + sum(contributions.values()) == pytest.approx(logit, abs=1e-6)
    assert got.loc[59, "criteria_failed"] == "not_student" and not got.loc[59, "mql_passed"]
    # The API gives the same numbers for the same leads and attributes.
    api = client.post("/v1/score/batch", json={"leads": [{"lead_id": i} for i in ids[:5]]}, headers=AUTH).json()["results"]
    assert [r["score"] for r in api] == pytest.approx(got["score"].iloc[:5].tolist(), abs=1e-6)
    assert [r["mql"]["summary"] for r in api] == got["mql_summary"].iloc[:5].tolist()
    # ... and each lead's record now has this latest score.
    latest = RecordStore.from_settings(own_workspace).latest_score(ids[0])
    assert latest is not None and latest["score"] == pytest.approx(got.loc[0, "score"])


def test_bad_files_are_refused_without_output(
    own_workspace: Settings, definitions: Definitions, demo_leads: pd.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    ids = lead_ids(demo_leads, 3)
    cases = {
        "no_id.csv": ("email\nx@y.z\n", "no lead_id column"),
        "blank_id.csv": (f"lead_id,industry\n{ids[0]},Retail\n,Retail\n", "row 3, column lead_id: empty"),
        "bad_value.csv": (
            f"lead_id,employees\n{ids[0]},10\n{ids[1]},lots\n",
            "row 3 (lead_id '" + ids[1] + "'): attributes.employees",
        ),
        "unknown.csv": (f"lead_id\n{ids[0]}\nghost-lead\n", "row 3 (lead_id 'ghost-lead')"),
    }
    for name, (text, words) in cases.items():
        src = tmp_path / name
        src.write_text(text)
        with pytest.raises(BatchError) as err:
            score_file(own_workspace, definitions, src, out, progress=False)
        assert str(src) in str(err.value) and words in str(err.value), str(err.value)
        assert not out.exists() and not list(tmp_path.glob(".out.csv*"))
    with pytest.raises(BatchError, match="unsupported output format"):
        score_file(own_workspace, definitions, tmp_path / "bad_value.csv", tmp_path / "out.xlsx", progress=False)
    with pytest.raises(BatchError, match="no such file"):
        score_file(own_workspace, definitions, tmp_path / "missing.csv", out, progress=False)


def test_the_file_has_grade_trend_and_to_pass(own_workspace: Settings, definitions: Definitions, tmp_path: Path) -> None:
    """Scored twice: the second file's trend is the first's score; a non-MQL says what would pass it."""
    src = tmp_path / "in.csv"
    pd.DataFrame(
        {"lead_id": ["grade-1", "grade-2"], "seniority": ["VP", "Student"], "industry": ["Software", "Software"]}
    ).to_csv(src, index=False)
    first = tmp_path / "first.csv"
    score_file(own_workspace, definitions, src, first, progress=False)
    one = pd.read_csv(first)
    assert one["previous_score"].isna().all() and one["delta"].isna().all()  # never scored before
    assert one["grade"].tolist() == [definitions.grade(s) for s in one["score"]]
    assert not one.loc[1, "mql_passed"] and json.loads(one.loc[1, "to_pass"]) == [] and math.isnan(one.loc[1, "score_if"])
    pd.DataFrame({"lead_id": ["grade-1"], "seniority": ["VP"], "industry": ["Software"], "demo_requests_90d": [1]}).to_csv(
        src, index=False
    )
    second = tmp_path / "second.csv"
    score_file(own_workspace, definitions, src, second, progress=False)
    two = pd.read_csv(second)
    assert two.loc[0, "previous_score"] == pytest.approx(one.loc[0, "score"], abs=1e-12)
    assert two.loc[0, "delta"] == pytest.approx(two.loc[0, "score"] - one.loc[0, "score"], abs=1e-12)
    assert pd.Timestamp(two.loc[0, "previous_at"]) == pd.Timestamp(one.loc[0, "scored_at"])

"""Fixtures shared by every test: the repo's definitions, an empty workspace, small factories."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from samepage.definitions import Definitions, load_definitions
from samepage.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEFINITIONS_FILE = REPO / "configs" / "definitions.yaml"
XEDUCATION_CSV = REPO.parent / "shared" / "datasets" / "xeducation" / "leads.csv"
IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="session")
def definitions() -> Definitions:
    return load_definitions(DEFINITIONS_FILE)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an empty workspace in a temporary folder (no environment leaks in)."""
    return Settings(home=tmp_path / "workspace", definitions=DEFINITIONS_FILE, _env_file=None)


def make_lead(**overrides: Any) -> dict[str, Any]:
    """One canonical lead row; override any field."""
    lead = {
        "lead_id": "L-1",
        "created_at": pd.Timestamp("2026-01-05T10:00:00Z"),
        "source": "Webinar",
        "industry": "Software",
        "employees": 250,
        "annual_revenue": 40_000_000.0,
        "country": "United States",
        "job_title": "VP Marketing",
        "seniority": "VP",
        "department": "Marketing",
    }
    lead.update(overrides)
    return lead


def make_event(**overrides: Any) -> dict[str, Any]:
    event = {
        "lead_id": "L-1",
        "occurred_at": pd.Timestamp("2026-01-06T09:00:00Z"),
        "type": "page_view",
        "value": float("nan"),
    }
    event.update(overrides)
    return event


def make_stage(**overrides: Any) -> dict[str, Any]:
    stage = {
        "lead_id": "L-1",
        "stage": "lead",
        "occurred_at": pd.Timestamp("2026-01-05T10:00:00Z"),
        "reason": None,
    }
    stage.update(overrides)
    return stage

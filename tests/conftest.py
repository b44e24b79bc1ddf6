"""Fixtures shared by every test: the repo's definitions, an empty workspace, small factories."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from samepage.definitions import Definitions, load_definitions
from samepage.settings import Settings
from tests.utils.builders import make_event, make_lead, make_stage

__all__ = ["make_event", "make_lead", "make_stage"]  # kept importable from here for older tests

REPO = Path(__file__).resolve().parents[1]
DEFINITIONS_FILE = REPO / "configs" / "definitions.yaml"
XEDUCATION_CSV = REPO.parent / "shared" / "datasets" / "xeducation" / "leads.csv"
IN_CI = os.environ.get("CI") == "true"
TRAINED_FIXTURES = frozenset({"workspace", "trained", "fitted"})  # fixtures that train a model


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that trains a model (through a trained-workspace fixture) is `slow`, so that
    `pytest -m "not slow"` is the quick loop; a module can also mark itself."""
    for item in items:
        if TRAINED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def definitions() -> Definitions:
    return load_definitions(DEFINITIONS_FILE)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for an empty workspace in a temporary folder (no environment leaks in)."""
    return Settings(home=tmp_path / "workspace", definitions=DEFINITIONS_FILE, _env_file=None)


@pytest.fixture(autouse=True)
def _numpy_error_state() -> Iterator[None]:
    """numpy's floating-point error handling is process-wide: what one test (or a library it drives)
    sets must not turn another test's harmless overflow into an error."""
    import numpy as np

    saved = np.geterr()
    yield
    np.seterr(**saved)

"""MLflow's tracking store on the machine's PostgreSQL, in both URL forms the README documents.

`postgresql://` is SQLAlchemy's default driver (psycopg 3); `postgresql+psycopg2://` names psycopg2.
Runs in CI (CI=true), where an unreachable PostgreSQL is a failure, and locally when it answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from samepage.settings import Settings
from tests.conftest import DEFINITIONS_FILE, IN_CI
from training import registry

pytestmark = pytest.mark.services
SERVER = "postgres@127.0.0.1:5432"


@pytest.fixture
def database() -> Iterator[str]:
    name = f"samepage_mlflow_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"postgresql://{SERVER}/postgres", autocommit=True, connect_timeout=2)
    except psycopg.Error as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {SERVER} is unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL at {SERVER} is unreachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield name
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2"])
def test_runs_are_tracked_in_postgresql(scheme: str, database: str, tmp_path) -> None:
    import mlflow

    settings = Settings(
        home=tmp_path / "workspace",
        definitions=DEFINITIONS_FILE,
        mlflow_tracking_uri=f"{scheme}://{SERVER}/{database}",
        _env_file=None,
    )
    client = registry.client_for(settings)
    experiment = client.get_experiment_by_name(registry.EXPERIMENT)
    assert experiment is not None
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        mlflow.log_metric("test_roc_auc", 0.75)
    assert client.get_run(run.info.run_id).data.metrics == {"test_roc_auc": 0.75}
    with psycopg.connect(f"postgresql://{SERVER}/{database}") as conn:  # really there, not in a local file
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (1,)

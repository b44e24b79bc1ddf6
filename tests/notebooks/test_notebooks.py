"""The data scientists' notebooks: stored clean, and run headless on a small demo workspace.

Each notebook is executed with nbclient in a kernel running this interpreter (the project's venv),
with its `parameters` cell overridden papermill-style. A failing cell fails the test. The retrain
notebook starts from an empty workspace, so it also exercises its bootstrap (demo data, features,
first champion); the explain notebook then runs on the workspace it left behind.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_notebook

from samepage.definitions import Definitions
from samepage.settings import Settings
from tests.conftest import DEFINITIONS_FILE, REPO

pytestmark = pytest.mark.slow

NOTEBOOKS = REPO / "notebooks"
NAMES = ("retrain.ipynb", "explain.ipynb")
KERNEL = "samepage-tests"
DEMO_LEADS = 2_000
EXPLAINED = 5


# -- stored without outputs -------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, (
        f"notebooks/{name}: cells {dirty} were saved with outputs or execution counts; "
        "clear them before committing (Jupyter: Edit ▸ Clear Outputs of All Cells, then save)"
    )
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [0], f"notebooks/{name}: the first code cell, and only it, must be tagged `parameters`"
    assert "WORKSPACE" in code[0].source and "DEFINITIONS" in code[0].source and "SEED" in code[0].source
    assert nb.metadata.kernelspec.name == "python3"


# -- running them ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelManager]:
    """One kernel running this interpreter (the venv), shared by the module's notebooks.

    Its kernelspec is found first through a temporary JUPYTER_PATH. Sharing it saves importing
    Feast and MLflow twice; each notebook still starts from an empty namespace (`%reset -f`).
    """
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "samepage (tests)", "language": "python"}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root))
        manager = KernelManager(kernel_name=KERNEL)
        manager.start_kernel(cwd=str(NOTEBOOKS))
        try:
            yield manager
        finally:
            manager.shutdown_kernel(now=True)


def execute(nb: NotebookNode, kernel: KernelManager, label: str) -> NotebookNode:
    """Run every cell from an empty namespace; a failing cell fails the test with its traceback."""
    reset = new_code_cell("%reset -f")
    reset.metadata["tags"] = ["injected-reset"]
    nb.cells.insert(0, reset)
    client = NotebookClient(nb, km=kernel, timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{label}: a cell failed\n{exc}", pytrace=False)
    return nb


def run_notebook(name: str, kernel: KernelManager, **parameters: Any) -> NotebookNode:
    """Execute notebooks/<name> with `parameters` injected after its `parameters` cell (papermill-style)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = new_code_cell("\n".join(f"{key} = {value!r}" for key, value in parameters.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)
    return execute(nb, kernel, f"notebooks/{name}")


def summary_of(nb: NotebookNode) -> dict[str, Any]:
    """The JSON the cell tagged `summary` displays."""
    cell = next(c for c in nb.cells if "summary" in c.metadata.get("tags", []))
    shown = [o.data["application/json"] for o in cell.outputs if "application/json" in o.get("data", {})]
    assert len(shown) == 1, f"the summary cell showed {len(shown)} JSON outputs"
    return json.loads(json.dumps(shown[0]))


def images(nb: NotebookNode) -> int:
    """Figures drawn: PNG outputs plus PNGs embedded in HTML outputs."""
    count = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            count += "image/png" in data
            count += data.get("text/html", "").count("data:image/png;base64,")
    return count


def test_kernel_runs_this_environment(kernel: KernelManager) -> None:
    code = "import sys, samepage, features, training, serving\nprint(sys.prefix)\nprint(features.__file__)"
    nb = new_notebook(cells=[new_code_cell(code)])
    execute(nb, kernel, "kernel check")
    prefix, package = "".join(o.get("text", "") for o in nb.cells[-1].outputs).split()
    assert Path(prefix) == Path(sys.prefix)  # the venv itself (its python may be a symlink to the system one)
    import features

    assert Path(package) == Path(features.__file__)  # the same project code as the tests


def test_a_failing_cell_fails_the_run(kernel: KernelManager) -> None:
    nb = new_notebook(
        cells=[new_code_cell("x = 1"), new_code_cell("raise ValueError('bad parameter: SEED')"), new_code_cell("y = 2")]
    )
    with pytest.raises(pytest.fail.Exception, match="bad parameter: SEED"):
        execute(nb, kernel, "failing notebook")
    assert nb.cells[-1].execution_count is None  # nothing runs after the failing cell


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """An empty workspace of its own: the retrain notebook fills it and moves its champion."""
    return Settings(home=tmp_path_factory.mktemp("notebooks") / "workspace", definitions=DEFINITIONS_FILE, _env_file=None)


@pytest.fixture(scope="module")
def changed() -> dict[str, int]:
    """Two hyper-parameters moved away from whatever the defaults are today."""
    from training.models import LightGBMParams

    defaults = LightGBMParams()
    return {"num_leaves": defaults.num_leaves + 4, "min_data_in_leaf": defaults.min_data_in_leaf // 2}


@pytest.fixture(scope="module")
def retrained(changed: dict[str, int], kernel: KernelManager, workspace: Settings) -> NotebookNode:
    return run_notebook(
        "retrain.ipynb",
        kernel,
        WORKSPACE=str(workspace.home_dir),
        DEFINITIONS=str(DEFINITIONS_FILE),
        SAMPLE_SIZE=DEMO_LEADS,
        SEED=7,
        CHANGED_PARAMS=changed,
    )


def test_retrain_registers_a_candidate_through_the_champion_gate(
    retrained: NotebookNode, changed: dict[str, int], workspace: Settings, definitions: Definitions
) -> None:
    from mlflow import MlflowClient

    from samepage.tables import read_tables

    summary = summary_of(retrained)
    client = MlflowClient(tracking_uri=workspace.tracking_uri, registry_uri=workspace.tracking_uri)
    # The empty workspace was bootstrapped: demo data and a first champion (v1), then the candidate (v2).
    assert len(read_tables(workspace.data_dir).leads) == DEMO_LEADS
    versions = sorted(int(v.version) for v in client.search_model_versions("name = 'sql_likelihood'"))
    assert versions == [1, 2]
    first = client.get_run(client.get_model_version("sql_likelihood", "1").run_id)
    assert first.data.tags["mlflow.source.name"].startswith("notebooks/retrain.ipynb")
    assert summary["model_version"] == "2"
    champion = client.get_model_version_by_alias("sql_likelihood", "champion").version
    assert str(champion) == summary["champion_version"] == ("2" if summary["promoted"] else "1")
    # The run carries the changed hyper-parameters and the notebook as its source.
    run = client.get_run(summary["run_id"])
    for key, value in changed.items():
        assert run.data.params[f"lgbm_{key}"] == str(value)
        assert f"{key}={value}" in run.data.params["changed_hyper_parameters"]
    assert run.data.tags["mlflow.source.name"] == "notebooks/retrain.ipynb"
    assert run.data.metrics["test_roc_auc"] == pytest.approx(summary["metrics"]["test_roc_auc"])
    candidate = client.get_model_version("sql_likelihood", "2")
    assert candidate.tags["definitions_version"] == definitions.version_string == summary["definitions_version"]
    assert "notebooks/retrain.ipynb" in candidate.description
    # Explore plots (source and ICP, monthly rate), the candidate's importance chart and the
    # champion-vs-candidate reliability curve were drawn.
    assert images(retrained) >= 4


def test_explain_matches_the_api_and_is_exact(
    retrained: NotebookNode, kernel: KernelManager, workspace: Settings, definitions: Definitions
) -> None:
    from mlflow import MlflowClient

    nb = run_notebook(
        "explain.ipynb",
        kernel,
        WORKSPACE=str(workspace.home_dir),
        DEFINITIONS=str(DEFINITIONS_FILE),
        SAMPLE_SIZE=EXPLAINED,
        SCAN=800,
        WHAT_IF={"demo_requests_90d": 3},
    )
    summary = summary_of(nb)
    client = MlflowClient(tracking_uri=workspace.tracking_uri, registry_uri=workspace.tracking_uri)
    assert summary["model"]["version"] == str(client.get_model_version_by_alias("sql_likelihood", "champion").version)
    leads = summary["leads"]
    assert len(leads) == EXPLAINED
    threshold = definitions.mql.threshold
    band = 0.10
    assert any(r["score"] >= threshold for r in leads) and any(r["score"] < threshold for r in leads)
    for r in leads:
        assert abs(r["score"] - threshold) <= band, r["lead_id"]
        e = r["explanation"]
        total = e["base_value"] + sum(c["contribution"] for c in e["contributions"])
        assert total == pytest.approx(math.log(r["score"] / (1 - r["score"])), abs=1e-6)
        assert sorted(c["feature"] for c in e["contributions"]) == sorted(definitions.feature_keys)
        assert [abs(c["contribution"]) for c in e["contributions"]] == sorted(
            (abs(c["contribution"]) for c in e["contributions"]), reverse=True
        )
        met = all(c["met"] for c in r["mql"]["criteria"])
        assert r["mql"]["passed"] == (r["score"] >= threshold and met)
    assert images(nb) >= 1
    # The what-if went through the API's override path: the value is the override, the explanation is
    # still exact, and a feature the definitions say only raises the score did not lower it.
    what_if = summary["what_if"]["result"]
    before = next(r for r in leads if r["lead_id"] == what_if["lead_id"])
    value = {c["feature"]: c["value"] for c in what_if["explanation"]["contributions"]}["demo_requests_90d"]
    assert value == 3
    e = what_if["explanation"]
    total = e["base_value"] + sum(c["contribution"] for c in e["contributions"])
    assert total == pytest.approx(math.log(what_if["score"] / (1 - what_if["score"])), abs=1e-6)
    assert definitions.feature("demo_requests_90d").direction == "up"
    assert what_if["score"] >= before["score"] - 1e-9

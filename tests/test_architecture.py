"""The layout is the architecture: the import-linter contracts in pyproject.toml cover every core module."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.conftest import REPO

CORE = REPO / "samepage"


def _contract(name_start: str) -> dict:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["name"].startswith(name_start))


def test_every_core_module_is_held_below_features_training_and_serving() -> None:
    listed = set(_contract("The core package")["source_modules"])
    on_disk = {
        f"samepage.{p.stem}"
        for p in CORE.iterdir()
        if p.name != "cli" and not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").exists())
    }
    assert on_disk - listed == set(), "add these core modules to the contract in pyproject.toml"
    assert listed - on_disk == set(), "the contract names modules that do not exist"


def test_the_cli_is_the_top_layer() -> None:
    layers = _contract("Layers")["layers"]
    assert layers[0] == "samepage.cli"
    assert layers[1].replace(" ", "").split("|") == ["training", "serving"]
    assert layers[-1] == "features"


def test_no_merge_conflict_markers_are_left_in_the_tree() -> None:
    """A merge marker committed by mistake breaks a page, a config or the README without failing anything else."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    markers = ("<<<<<<< ", ">>>>>>> ")
    found = []
    for name in tracked:
        path = root / name
        if path.suffix not in {".py", ".md", ".html", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ipynb"} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if line.startswith(markers) or line == "=======":
                found.append(f"{name}:{number}")
    assert not found, f"merge conflict markers: {found}"

"""The layout is the architecture: the import-linter contracts in pyproject.toml cover every core module."""

from __future__ import annotations

import tomllib

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

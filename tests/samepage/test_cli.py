"""The command line's edges: help, clean errors for bad configuration (no stack traces)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from samepage.cli import app

runner = CliRunner()


def test_help_lists_every_contract_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "demo", "import", "features", "train", "score", "serve"):
        assert command in result.output


def test_bad_definitions_file_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "defs.yaml"
    bad.write_text("version: '1'\nmql: {threshold: 3}\n")
    result = runner.invoke(
        app, ["demo", "--leads", "10"], env={"SAMEPAGE_DEFINITIONS": str(bad), "SAMEPAGE_HOME": str(tmp_path / "ws")}
    )
    assert result.exit_code == 2
    assert "mql.threshold" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "ws" / "data").exists()

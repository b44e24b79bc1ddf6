"""The command line's edges: help, clean errors for bad configuration (no stack traces)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from samepage.cli import app

runner = CliRunner()


def test_help_lists_every_contract_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "demo", "import", "features", "train", "score", "serve", "definitions"):
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


def test_the_api_key_is_printed_in_full_only_when_it_is_made(settings) -> None:
    from samepage.cli.main import api_key_line

    key = "sp_0123456789abcdef"
    assert key in api_key_line(settings, key, made=True)
    later = api_key_line(settings, key, made=False)
    assert key not in later and key[:4] in later and str(settings.home_dir) in later
    from_env = api_key_line(settings.model_copy(update={"api_keys": key}), key, made=False)
    assert key not in from_env and "SAMEPAGE_API_KEYS" in from_env


def test_the_demo_ends_today_unless_told_otherwise() -> None:
    import pandas as pd

    from samepage.cli.main import demo_end

    assert demo_end(None) == pd.Timestamp.now(tz="UTC").normalize()
    assert demo_end("2026-10-01") == pd.Timestamp("2026-10-01T00:00:00Z")
    result = runner.invoke(app, ["demo", "--leads", "5", "--end", "nope"])
    assert result.exit_code == 2 and "--end" in result.output


def test_a_bad_proposed_definitions_file_names_file_and_field(tmp_path: Path) -> None:
    from tests.conftest import DEFINITIONS_FILE

    env = {"SAMEPAGE_DEFINITIONS": str(DEFINITIONS_FILE), "SAMEPAGE_HOME": str(tmp_path / "ws")}
    bad = tmp_path / "proposed.yaml"
    bad.write_text(DEFINITIONS_FILE.read_text().replace("  threshold: 0.35", "  threshold: 1.5"))
    for args in (["--proposed", str(bad)], ["--proposed", str(bad), "--json"], ["--proposed", str(tmp_path / "none.yaml")]):
        result = runner.invoke(app, ["definitions", "preview", *args], env=env)
        assert result.exit_code == 2, result.output
        assert str(tmp_path) in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["definitions", "preview", "--proposed", str(bad)], env=env)
    assert "proposed.yaml" in result.output and "mql.threshold" in result.output
    assert not (tmp_path / "ws").exists()  # nothing was opened or written


def test_a_preview_without_a_champion_gives_words_and_verdict_and_writes_nothing(tmp_path: Path) -> None:
    import json

    from tests.conftest import DEFINITIONS_FILE

    env = {"SAMEPAGE_DEFINITIONS": str(DEFINITIONS_FILE), "SAMEPAGE_HOME": str(tmp_path / "ws")}
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text(DEFINITIONS_FILE.read_text().replace("  threshold: 0.35", "  threshold: 0.3"))
    result = runner.invoke(app, ["definitions", "preview", "--proposed", str(proposed), "--json"], env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert body["retrain_needed"] is False and body["expected_mql_per_week"] is None
    assert body["changes"] == ["MQL threshold 0.35 → 0.3 (lower: more leads pass)."]
    assert not (tmp_path / "ws").exists()

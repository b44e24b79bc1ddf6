"""`serve` with several workers: uvicorn's worker processes build the same app from the handed settings."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

import serving.app as app_module
from samepage.definitions import Definitions
from samepage.locks import workspace_lock
from samepage.settings import Settings
from serving.online import REFRESH_LOCK, OnlineWriter, refresh_once
from tests.conftest import DEFINITIONS_FILE


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(home=tmp_path, definitions=DEFINITIONS_FILE, api_keys="k-1,k-2", _env_file=None, **extra)


def test_several_workers_run_the_factory_with_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setenv(app_module.WORKER_ENV, "")  # restored (removed) after the test
    settings = _settings(tmp_path, workers=3, port=8123, reload_seconds=7.0)
    app_module.serve(settings, proposal=("tests.serving.test_workers:_proposal", "proposed.yaml"))
    (args, kwargs), = calls
    assert args == ("serving.app:worker_app",)
    assert kwargs["factory"] is True and kwargs["workers"] == 3 and kwargs["port"] == 8123
    app = app_module.worker_app()  # what each worker process runs
    assert app.state.settings.model_dump() == settings.model_dump()
    assert app.state.proposed() == ("proposed.yaml", app.state.defs.version_string)


def _proposal(settings: Settings, defs: Definitions, path: Path) -> Any:
    return lambda: (str(path), defs.version_string)


def test_one_worker_serves_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(app))
    app_module.serve(_settings(tmp_path, workers=1))
    assert len(calls) == 1 and not isinstance(calls[0], str)


def test_zero_workers_means_one_per_core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module.os, "cpu_count", lambda: 6)
    assert app_module.workers(_settings(tmp_path, workers=0)) == 6


def test_a_preview_function_needs_its_import_string_with_workers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="proposal"):
        app_module.serve(_settings(tmp_path, workers=2), proposed=lambda: None)  # type: ignore[arg-type,return-value]


def test_only_one_worker_refreshes_at_a_time(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    writer = cast(OnlineWriter, SimpleNamespace(settings=settings, defs=None, get=lambda: None))
    with workspace_lock(settings, REFRESH_LOCK, wait_seconds=0):  # another worker is refreshing
        assert refresh_once(writer) is None

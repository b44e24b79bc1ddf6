"""A step is timed and shown; a failing step is not marked done."""

from __future__ import annotations

import pytest
from rich.console import Console
from rich.progress import Progress

from samepage.progress import step


def test_a_step_is_timed_counted_and_marked_done() -> None:
    timings: dict[str, float] = {}
    with Progress(console=Console(quiet=True), disable=False) as bar:
        with step(bar, "Reading", timings) as advance:
            advance(3, 10)
            task = bar.tasks[0]
            assert (task.completed, task.total) == (3, 10)
        assert bar.tasks[0].description.endswith("done[/]")
    assert set(timings) == {"Reading"} and timings["Reading"] >= 0


def test_a_failing_step_is_not_marked_done_and_not_timed() -> None:
    timings: dict[str, float] = {}
    with Progress(console=Console(quiet=True), disable=False) as bar:
        with pytest.raises(ValueError), step(bar, "Reading", timings):
            raise ValueError("bad file")
        assert not bar.tasks[0].description.endswith("done[/]")
    assert timings == {}


def test_without_a_display_it_only_times() -> None:
    timings: dict[str, float] = {}
    with step(None, "Quiet", timings) as advance:
        advance(1, 2)
    assert "Quiet" in timings

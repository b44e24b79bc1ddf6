"""One way to show and time a long step (rich): the feature build, training and batch scoring use it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import Progress

Advance = Callable[[int, int], None]


@contextmanager
def step(progress: Progress | None, description: str, timings: dict[str, float]) -> Iterator[Advance]:
    """Time the block into `timings[description]` and show it on `progress` (None: silent).

    Yields `advance(done, total)` for steps that can count; a step that cannot just ignores it.
    The step shows as done only when the block finishes without an exception.
    """
    task = progress.add_task(description, total=None) if progress is not None else None

    def advance(done: int, total: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=done, total=total)

    started = time.perf_counter()
    yield advance
    timings[description] = round(time.perf_counter() - started, 3)
    if progress is not None and task is not None:
        progress.update(task, total=1, completed=1, description=f"{description} [green]done[/]")

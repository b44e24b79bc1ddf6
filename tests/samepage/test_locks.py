"""Two processes cannot hold the same workspace lock at once; a killed holder frees it."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest

from samepage.locks import WorkspaceBusy, workspace_lock
from samepage.settings import Settings


def _hold(settings: Settings, ready: mp.synchronize.Event) -> None:
    with workspace_lock(settings, "train"):
        ready.set()
        time.sleep(60)


def test_a_second_holder_waits_then_is_told_who_holds_it(settings: Settings) -> None:
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(settings, ready))
    holder.start()
    try:
        assert ready.wait(20)
        with pytest.raises(WorkspaceBusy, match=f"pid {holder.pid}"), workspace_lock(settings, "train", wait_seconds=0.5):
            pass
        with workspace_lock(settings, "score", wait_seconds=0.5):  # other names are independent
            pass
        os.kill(holder.pid, signal.SIGKILL)  # a killed trainer must not leave the workspace locked
        holder.join(10)
        with workspace_lock(settings, "train", wait_seconds=5):
            pass
    finally:
        if holder.is_alive():
            holder.kill()

"""A workspace lock: steps that must not interleave (two trainings naming the same feature
service, then racing to promote) take it; the second waits, or says who holds it."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from samepage.settings import Settings


class WorkspaceBusy(RuntimeError):
    """Another process holds the lock for longer than the caller would wait."""


@contextmanager
def workspace_lock(settings: Settings, name: str, wait_seconds: float = 600.0) -> Iterator[None]:
    """Hold `<workspace>/.<name>.lock` (an OS file lock: released even when the holder is killed).

    One machine's processes exclude each other; trainings on several machines sharing a
    PostgreSQL tracking store need the store's own locking, which MLflow does not offer.
    """
    path = settings.ensure_home() / f".{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                    raise WorkspaceBusy(f"{name}: the workspace is busy ({holder} holds {path})") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

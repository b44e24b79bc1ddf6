"""Login throttling: at most MAX_FAILURES wrong keys per client address in a sliding WINDOW.

Kept in this process's memory: with several workers each counts its own share, so the limit is
per worker (a guess-rate bound, not an account lock-out). Behind a proxy every client shares the
proxy's address; the limit then protects the service as a whole.
"""

from __future__ import annotations

import threading
import time
from collections import deque

MAX_FAILURES = 5
WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000  # forget the oldest addresses first: the table must not grow without bound


class LoginThrottle:
    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str, now: float | None = None) -> int:
        """Seconds until this address may try again; 0 when it may now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = self._recent(address, now)
            if len(recent) < self.max_failures:
                return 0
            return max(1, int(recent[0] + self.window - now + 0.999))

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(address, now).append(now)
            if len(self._failures) > MAX_ADDRESSES:
                self._failures.pop(next(iter(self._failures)))

    def _recent(self, address: str, now: float) -> deque[float]:
        recent = self._failures.setdefault(address, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent

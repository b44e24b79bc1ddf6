"""Latest scores go to the lead-record store from a background thread, batched.

Keeping the record of a score is not what the caller waits for, so a scoring request only queues
it; the writer drains the queue in one transaction per batch (waiting `LINGER` for more). Only the
first score of a batch wakes the writer (and a flush or close): a wake-up per request took the GIL
from the request being answered. `flush()` gives read-your-writes to
the lead record route; `previous_scores` answers from what is queued but not yet written, then from
the store, so a lead scored twice in a row sees its first score in the second's `trend`.
(Feedback, which must be durable before the answer, never goes this way.)
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from samepage.answers import Vocabulary, json_bytes
from samepage.records import RecordStore
from samepage.values import utc_timestamp

if TYPE_CHECKING:
    from serving.scorer import Scored

log = logging.getLogger("samepage.serving")
_STOP = object()
# Seconds the writer waits for more scores before a transaction: a commit per score took the GIL
# from the next request (tail latency of /v1/score); queued scores stay visible to `previous_scores`.
LINGER = 0.05


class ScoreWriter:
    def __init__(self, store: RecordStore, linger: float = LINGER) -> None:
        self.store = store
        self.linger = linger
        self._items: list[Any] = []  # queued: a list of Scored, a flush's Event, or _STOP
        self._urgent = False  # a flush or close is queued: no lingering
        self._ready = threading.Condition()
        self._pending: dict[str, tuple[float, Any]] = {}  # queued, not yet written: lead -> (score, scored_at as given)
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="samepage-score-writer", daemon=True)
        self._thread.start()

    def submit(self, results: list[Scored]) -> None:
        """Queue answers to be kept as each lead's latest score (serialized in the writer's thread, in
        the stored form: not the bytes the caller got)."""
        with self._pending_lock:
            for r in results:
                self._pending[r.answer["lead_id"]] = (r.answer["score"], r.answer["scored_at"])
        self._put(results, urgent=False)

    def previous_scores(self, lead_ids: list[str]) -> dict[str, tuple[float, datetime]]:
        """Each lead's latest score: a queued one if any (the store has not got it yet), else the store's."""
        with self._pending_lock:
            held = {lid: self._pending[lid] for lid in lead_ids if lid in self._pending}
        queued = {lid: (score, utc_timestamp(at).to_pydatetime()) for lid, (score, at) in held.items()}
        rest = [lid for lid in lead_ids if lid not in queued]
        stored: dict[str, tuple[float, datetime]] = {}
        if rest:
            try:
                stored = self.store.previous_scores(rest)
            except Exception as exc:  # a store that does not answer costs the trend, never the score
                error = type(exc).__name__
                log.error("reading previous scores failed", extra={"event": "previous_scores_failed", "error": error})
        return {**stored, **queued}

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued before this call is written."""
        done = threading.Event()
        self._put(done, urgent=True)
        done.wait(timeout)

    def close(self) -> None:
        self._put(_STOP, urgent=True)
        self._thread.join(timeout=30)

    def _put(self, item: Any, urgent: bool) -> None:
        with self._ready:
            self._items.append(item)
            self._urgent = self._urgent or urgent
            if urgent or len(self._items) == 1:  # the writer waits for a first item, or lingers until urgent
                self._ready.notify()

    def _take(self) -> list[Any]:
        """What is queued, waiting up to `linger` seconds after the first item for more (not when a flush
        or close is among them): one transaction for many requests, not one per score."""
        with self._ready:
            while not self._items:
                self._ready.wait()
            deadline = time.monotonic() + self.linger
            while not self._urgent and (remaining := deadline - time.monotonic()) > 0:
                self._ready.wait(remaining)
            items, self._items, self._urgent = self._items, [], False
        return items

    def _run(self) -> None:
        stop = False
        while not stop:
            items = self._take()
            rows: dict[str, dict[str, Any]] = {}
            vocabularies: dict[str, Vocabulary] = {}
            events: list[threading.Event] = []
            for item in items:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    events.append(item)
                else:
                    for r in item:  # the last score of a lead wins
                        rows[r.answer["lead_id"]] = score_row(r)
                        vocabularies[r.explanation.vocabulary.id] = r.explanation.vocabulary
            if rows:
                self._save(list(rows.values()), list(vocabularies.values()))
                self._written(rows)
            for e in events:
                e.set()


    def _written(self, rows: dict[str, dict[str, Any]]) -> None:
        """Forget queued scores now in the store, unless a newer one of the lead was queued meanwhile."""
        with self._pending_lock:
            for lead_id, row in rows.items():
                held = self._pending.get(lead_id)
                if held is not None and held == (row["score"], row["scored_at"]):
                    del self._pending[lead_id]

    def _save(self, rows: list[dict[str, Any]], vocabularies: list[Vocabulary]) -> None:
        """One transaction for the batch; if the store refuses it, each row alone, so one row it
        cannot hold (a NUL in an id on PostgreSQL) costs only that row, not the whole batch."""
        try:
            self.store.save_scores(rows, vocabularies)
            return
        except Exception as exc:  # a full disk must not kill scoring; say so in the log
            first_error = type(exc).__name__
        failed = 0
        for row in rows:
            try:
                self.store.save_scores([row], vocabularies)
            except Exception:
                failed += 1
        # Counts and the error type only: lead ids may be personal data.
        log.error(
            "saving latest scores failed",
            extra={"event": "save_scores_failed", "error": first_error, "rows": len(rows), "set_aside": failed},
        )


def score_row(scored: Scored) -> dict[str, Any]:
    """An answer as a `latest_scores` row of the record store: the payload in the one stored form
    (`Scored.record`, compact; save it with `scored.explanation.vocabulary`)."""
    result = scored.answer
    return {
        "lead_id": result["lead_id"],
        "score": result["score"],
        "mql_passed": result["mql"]["passed"],
        "model_name": result["model"]["name"],
        "model_version": result["model"]["version"],
        "definitions_version": result["definitions_version"],
        "scored_at": result["scored_at"],
        # a fraction of json.dumps' time, which here holds the GIL while the next request is being scored
        "payload": json_bytes(scored.record(), fallback=str).decode("utf-8"),
    }

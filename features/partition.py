"""The workspace's events split on disk by chunks of whole leads, so the build holds one chunk at a time.

One streaming pass over the events (batch by batch, in table order) codes each lead in order of
first appearance, exactly as `pd.factorize` of the whole table would, and appends each batch's
rows to the Arrow stream file of their chunk of lead codes. A chunk read back holds every event
of its leads, in table order, and nothing else: whatever is computed per lead comes out the same
as from the whole table, in memory bounded by the chunk size and the number of leads.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

_LEAD_ID = "lead_id"
_OCCURRED_AT = "occurred_at"
_TYPE = "type"
_INBOX_ID = "inbox_id"
_NS = 1_000_000_000
_SCHEMA = pa.schema([("lead", pa.int64()), ("second", pa.int64()), ("type", pa.int16()), ("inbox_id", pa.float64())])


@dataclass(frozen=True)
class LeadChunk:
    """The events of one chunk of leads, in table order: global lead codes, UTC epoch seconds rounded
    up (an event counts from the first whole second at or after it), type codes (-1: no type) and
    the API inbox id (NaN for imported events)."""

    leads: np.ndarray
    seconds: np.ndarray
    types: np.ndarray
    inbox_ids: np.ndarray


def empty_chunk() -> LeadChunk:
    """A chunk without events (what a source built per chunk starts from when there are none)."""
    return LeadChunk(*(np.zeros(0, dtype=t.type.to_pandas_dtype()) for t in _SCHEMA))


@dataclass
class EventChunks:
    """Events partitioned by `leads_per_chunk` consecutive lead codes; iterate for the chunks in order.

    `lead_ids[code]` is the lead of a code, `type_names[code]` the event type; `first_second` and
    `last_second` bound every event's time (None without events).
    """

    directory: Path
    leads_per_chunk: int
    lead_ids: pd.Index
    type_names: list[str]
    n_events: int
    first_second: int | None
    last_second: int | None
    _files: list[Path] = field(default_factory=list)

    @property
    def n_leads(self) -> int:
        return len(self.lead_ids)

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self) -> Iterator[LeadChunk]:
        for path in self._files:
            with pa.ipc.open_stream(path) as reader:
                table = reader.read_all()
            yield LeadChunk(
                leads=table.column("lead").to_numpy(),
                seconds=table.column("second").to_numpy(),
                types=table.column("type").to_numpy(),
                inbox_ids=table.column("inbox_id").to_numpy(),
            )


class _Codes:
    """Codes in order of first appearance across batches (what factorizing their concatenation gives)."""

    def __init__(self) -> None:
        self.of: dict[str, int] = {}

    def code(self, values: pd.Series) -> np.ndarray:
        local, uniques = pd.factorize(values)
        known = self.of
        mapped = np.fromiter((known.setdefault(u, len(known)) for u in uniques), dtype="int64", count=len(uniques))
        return np.where(local < 0, -1, mapped[local] if len(mapped) else local)

    def names(self) -> list[str]:
        return list(self.of)


def partition_events(batches: Iterable[pd.DataFrame], directory: Path, leads_per_chunk: int) -> EventChunks:
    """Stream `batches` (lead_id, occurred_at, type and optionally inbox_id; in table order) into
    `directory`, one Arrow stream file per chunk of leads. Rows without a lead or a time are skipped."""
    if leads_per_chunk < 1:
        raise ValueError(f"leads_per_chunk must be at least 1, not {leads_per_chunk}")
    leads, types = _Codes(), _Codes()
    writers: list[pa.RecordBatchStreamWriter] = []
    files: list[Path] = []
    n_events, first, last = 0, None, None
    with contextlib.ExitStack() as stack:
        for batch in batches:
            batch = batch.loc[batch[_LEAD_ID].notna() & batch[_OCCURRED_AT].notna()]
            if batch.empty:
                continue
            codes = leads.code(batch[_LEAD_ID].astype("string"))
            stamps = pd.to_datetime(batch[_OCCURRED_AT], utc=True).dt.as_unit("ns")
            seconds = -((-stamps.dt.tz_localize(None).to_numpy().astype("int64")) // _NS)
            type_codes = types.code(batch[_TYPE].astype("string")).astype("int16")
            inbox = batch[_INBOX_ID] if _INBOX_ID in batch.columns else pd.Series(np.nan, index=batch.index)
            inbox_ids = pd.to_numeric(inbox).to_numpy(dtype="float64")
            n_events += len(batch)
            low, high = int(seconds.min()), int(seconds.max())
            first = low if first is None else min(first, low)
            last = high if last is None else max(last, high)
            chunk = codes // leads_per_chunk
            while len(writers) <= int(chunk.max()):  # codes only grow, so chunks open in order
                files.append(directory / f"leads-{len(writers):06d}.arrows")
                writers.append(stack.enter_context(pa.ipc.new_stream(files[-1], _SCHEMA)))
            order = np.argsort(chunk, kind="stable")  # keeps table order within each chunk
            bounds = np.searchsorted(chunk[order], np.arange(int(chunk.min()), int(chunk.max()) + 2))
            for c, lo, hi in zip(range(int(chunk.min()), int(chunk.max()) + 1), bounds[:-1], bounds[1:], strict=True):
                if hi > lo:
                    rows = order[lo:hi]
                    arrays = [codes[rows], seconds[rows], type_codes[rows], inbox_ids[rows]]
                    writers[c].write_batch(pa.record_batch([pa.array(a) for a in arrays], schema=_SCHEMA))
    return EventChunks(
        directory=directory,
        leads_per_chunk=leads_per_chunk,
        lead_ids=pd.Index(leads.names(), dtype=object),
        type_names=types.names(),
        n_events=n_events,
        first_second=first,
        last_second=last,
        _files=files,
    )


@contextlib.contextmanager
def partitioned(batches: Iterable[pd.DataFrame], leads_per_chunk: int, under: Path | None = None) -> Iterator[EventChunks]:
    """`partition_events` into a temporary folder (inside `under` if given), removed afterwards."""
    if under is not None:
        under.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".events-", dir=under) as tmp:
        yield partition_events(batches, Path(tmp), leads_per_chunk)

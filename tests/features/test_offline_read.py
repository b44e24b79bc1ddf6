"""`features.offline` reads the latest row per lead exactly as the pandas implementation it replaced
(kept below as the oracle): same rows, same tie-breaking, same order, same dtypes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.offline import Sources, _codes, latest_engagement, lead_chunks
from features.transform import LAST_ACTIVITY_AT, LEAD_ID, TIMESTAMP, engagement_keys
from samepage.definitions import Definitions
from samepage.values import utc_timestamp
from tests.utils.builders import make_lead

NOW = pd.Timestamp("2026-06-01T00:00:00Z")
UTC_NS = pa.timestamp("ns", tz="UTC")


# -- the oracle: the pandas implementation as it was ------------------------------------------
def _old_seconds(values: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(values, utc=True)
    return stamps.dt.tz_localize(None).to_numpy().astype("datetime64[s]")


def _old_last_per_lead(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(TIMESTAMP, kind="stable").drop_duplicates(LEAD_ID, keep="last")


def _old_latest_engagement(path: Path, defs: Definitions, now: pd.Timestamp, batch_rows: int) -> pd.DataFrame:
    fields = [*engagement_keys(defs), LAST_ACTIVITY_AT]
    cutoff = utc_timestamp(now)
    kept: list[pd.DataFrame] = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=[LEAD_ID, TIMESTAMP, *fields]):
        frame = batch.to_pandas()
        frame = frame[frame[TIMESTAMP] <= cutoff]
        kept.append(_old_last_per_lead(frame))
    if not kept:
        return pd.DataFrame(columns=fields, index=pd.Index([], name=LEAD_ID))
    latest = _old_last_per_lead(pd.concat(kept, ignore_index=True))
    out = latest.set_index(LEAD_ID)[fields]
    out[LAST_ACTIVITY_AT] = _old_seconds(out[LAST_ACTIVITY_AT])
    return out


def _old_lead_chunks(
    sources: Sources, defs: Definitions, now: pd.Timestamp, chunk: int, engagement: pd.DataFrame
) -> Iterator[pd.DataFrame]:
    cutoff = utc_timestamp(now)
    for batch in pq.ParquetFile(sources.attributes).iter_batches(batch_size=chunk):
        frame = batch.to_pandas()
        frame = frame[frame[TIMESTAMP] <= cutoff]
        frame = _old_last_per_lead(frame) if frame[LEAD_ID].duplicated().any() else frame
        got = engagement.reindex(frame[LEAD_ID].to_numpy())
        for column in got.columns:
            frame[column] = got[column].to_numpy()
        if len(frame):
            yield frame.reset_index(drop=True)


# -- sources ------------------------------------------------------------------------------------
def _days(rng: np.random.Generator, n: int) -> pd.DatetimeIndex:
    """Times on a few whole days around NOW (many ties per lead, some after NOW)."""
    return pd.DatetimeIndex(NOW + pd.to_timedelta(rng.integers(-6, 3, n), unit="D"))


def _engagement_source(path: Path, defs: Definitions, *, seed: int, grouped: bool, nulls: str, n_rows: int = 600) -> Path:
    """Engagement rows typed as `write_sources` types them, written in row groups of 50.

    `grouped`: rows by lead then time, like the sources (else shuffled: a lead's rows in many
    batches, and written with a tiny dictionary page limit: lead ids fall back to plain pages).
    `nulls`: "none", "some" (counts, last_activity_at and event_timestamp here and there) or
    "after_now" (one null count, in a row after NOW only)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"L-{i:03d}" for i in rng.integers(0, 32, n_rows)])  # L-032.. have no engagement
    stamps = _days(rng, n_rows)
    if grouped:
        order = np.lexsort((stamps.asi8, ids))
        ids, stamps = ids[order], stamps[order]
    columns: dict[str, pa.Array] = {LEAD_ID: pa.array(ids), TIMESTAMP: pa.array(stamps, type=UTC_NS)}
    for key in engagement_keys(defs):
        missing = rng.random(n_rows) < 0.05 if nulls == "some" else np.zeros(n_rows, dtype=bool)
        columns[key] = pa.array(rng.integers(0, 50, n_rows).astype("int32"), mask=missing)
    last = stamps - pd.to_timedelta(rng.integers(0, 48, n_rows), unit="h")
    columns[LAST_ACTIVITY_AT] = pa.array(last, type=UTC_NS, mask=rng.random(n_rows) < 0.05 if nulls == "some" else None)
    if nulls == "some":
        columns[TIMESTAMP] = pa.array(stamps, type=UTC_NS, mask=rng.random(n_rows) < 0.02)
    if nulls == "after_now":
        key = engagement_keys(defs)[0]
        after = int(np.flatnonzero(stamps > NOW)[0])
        columns[key] = pa.array(columns[key].to_numpy(zero_copy_only=False), mask=np.arange(n_rows) == after)
    pq.write_table(pa.table(columns), path, row_group_size=50, dictionary_pagesize_limit=1 << 20 if grouped else 64)
    return path


def _attributes_source(path: Path, seed: int) -> Path:
    """40 leads (8 without engagement) and a few leads twice (ties too), some created after NOW."""
    rng = np.random.default_rng(seed)
    leads = [make_lead(lead_id=f"L-{i:03d}") for i in range(40)]
    leads += [make_lead(lead_id=f"L-{i:03d}", industry="Retail") for i in rng.integers(0, 40, 12)]
    frame = pd.DataFrame(leads)
    frame[TIMESTAMP] = _days(rng, len(frame))
    frame.loc[rng.random(len(frame)) < 0.2, "industry"] = None
    frame.loc[rng.random(len(frame)) < 0.2, "employees"] = np.nan
    frame = frame.astype({"employees": "float64"})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=16)
    return path


def _assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()


# -- tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_rows", [5, 64, 10_000])
@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize(("nulls", "seed"), [("none", 1), ("some", 2), ("after_now", 3), ("some", 4)])
def test_latest_engagement_equals_the_pandas_oracle(
    tmp_path: Path, definitions: Definitions, batch_rows: int, grouped: bool, nulls: str, seed: int
) -> None:
    path = _engagement_source(tmp_path / "e.parquet", definitions, seed=seed, grouped=grouped, nulls=nulls)
    got = latest_engagement(path, definitions, NOW, batch_rows, threads=1)
    want = _old_latest_engagement(path, definitions, NOW, batch_rows)
    _assert_same(got, want)
    for threads in (2, 5, 40):  # the 12 row groups read in runs at once, a lead's rows in several runs
        _assert_same(latest_engagement(path, definitions, NOW, batch_rows, threads=threads), want)
    rows = pq.read_table(path).to_pandas()
    kept = rows[rows[TIMESTAMP] <= NOW]
    at_latest = kept[kept[TIMESTAMP] == kept.groupby(LEAD_ID)[TIMESTAMP].transform("max")]
    assert at_latest[LEAD_ID].duplicated().any(), "the data must hold ties at a lead's latest time"
    assert len(got) == kept[LEAD_ID].nunique() < 40 and (rows[TIMESTAMP] > NOW).any()
    key = engagement_keys(definitions)[0]
    assert str(got[key].dtype) == ("int32" if nulls == "none" else "float64")


def test_the_later_row_wins_among_equal_times_across_batches(tmp_path: Path, definitions: Definitions) -> None:
    """Stable: the later row in the file wins a tie, rows after NOW never do; ordered by (time, position)."""
    key = engagement_keys(definitions)[0]
    t1, t2, after = NOW - pd.Timedelta("2D"), NOW - pd.Timedelta("1D"), NOW + pd.Timedelta("1s")
    rows = [("L-1", t1, 1), ("L-2", t2, 5), ("L-1", t2, 2), ("L-1", t2, 3), ("L-1", after, 9), ("L-3", t1, 7)]
    columns: dict[str, pa.Array] = {
        LEAD_ID: pa.array([r[0] for r in rows]),
        TIMESTAMP: pa.array([r[1] for r in rows], type=UTC_NS),
        **{k: pa.array([r[2] if k == key else 0 for r in rows], type=pa.int32()) for k in engagement_keys(definitions)},
        LAST_ACTIVITY_AT: pa.array([r[1] for r in rows], type=UTC_NS),
    }
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=2)  # the tie at t2 spans two row groups
    for batch_rows in (1, 2, 100):
        for threads in (1, 2, 3):
            got = latest_engagement(path, definitions, NOW, batch_rows, threads=threads)
            assert got.index.tolist() == ["L-3", "L-2", "L-1"] and got[key].tolist() == [7, 5, 3]


@pytest.mark.parametrize(
    "ids",
    [
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, None, 0, None]), pa.array(["b", "a", "b"])),  # a repeated value
        pa.array(["b", "a", "b", None, "c", None]),
    ],
)
def test_lead_codes_are_equal_exactly_for_equal_ids(ids: pa.Array) -> None:
    """Missing ids count as one lead, as `drop_duplicates` counts them."""
    values = ids.dictionary_decode().to_pylist() if pa.types.is_dictionary(ids.type) else ids.to_pylist()
    codes = _codes(ids).tolist()
    assert [[a == b for b in codes] for a in codes] == [[a == b for b in values] for a in values]


@pytest.mark.parametrize("when", [NOW - pd.Timedelta(days=30), NOW])
def test_no_rows_or_none_in_time_equal_the_oracle(tmp_path: Path, definitions: Definitions, when: pd.Timestamp) -> None:
    """An empty source, and a source whose rows all come after `now`."""
    full = _engagement_source(tmp_path / "full.parquet", definitions, seed=5, grouped=True, nulls="none")
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(full).slice(0, 0), empty)
    for path in (empty, full):
        _assert_same(latest_engagement(path, definitions, when, 7), _old_latest_engagement(path, definitions, when, 7))


@pytest.mark.parametrize("chunk", [5, 16, 1_000])
@pytest.mark.parametrize(("nulls", "seed"), [("none", 6), ("some", 7)])
def test_lead_chunks_equal_the_pandas_oracle(tmp_path: Path, definitions: Definitions, chunk: int, nulls: str, seed: int) -> None:
    """Attribute chunks (duplicates within a chunk, leads created after now, leads without engagement)
    joined with the latest engagement: the same frames, in the same lead order, with the same dtypes."""
    sources = Sources(
        _attributes_source(tmp_path / "a.parquet", seed),
        _engagement_source(tmp_path / "e.parquet", definitions, seed=seed, grouped=False, nulls=nulls),
    )
    assert sources.engagement is not None
    oracle = _old_latest_engagement(sources.engagement, definitions, NOW, 7)
    want = list(_old_lead_chunks(sources, definitions, NOW, chunk, oracle))
    for engagement in (latest_engagement(sources.engagement, definitions, NOW, 7), None):
        got = list(lead_chunks(sources, definitions, NOW, chunk, engagement))
        assert len(got) == len(want) > 0
        for mine, theirs in zip(got, want, strict=True):
            _assert_same(mine, theirs)
    merged = pd.concat(want)
    assert merged[LEAD_ID].isin([f"L-{i:03d}" for i in range(32, 40)]).any()  # leads without engagement are there
    assert len(merged) < 52  # the duplicate rows and the leads created after NOW are gone

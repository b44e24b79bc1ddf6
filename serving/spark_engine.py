"""`samepage score --all --engine spark`: the same champion and the same code, on Spark.

Spark reads the same Parquet sources, keeps the latest row at or before now per lead (a window
over `event_timestamp`, as `features.offline` does in chunks), and `mapInPandas` runs each batch
of leads through `serving.score_all.score_frame`, i.e. `Scorer.score`: the one derivation, the one
`explain`, the verdict and `to_pass`. The champion's bundle travels to the executors with the
function (pickled once per task), so executors need the samepage package, not the registry.
The answers stream back to the driver (`toLocalIterator`) in the record store's compact form
(`Scored.record`), which adds trend, writes the output and records the latest scores exactly as the
local engine does. pyspark is an optional
extra (`pip install 'samepage[spark]'`); under `spark-submit` the session takes its master from
there, otherwise it runs in local mode on every core.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.offline import Sources
from features.transform import LAST_ACTIVITY_AT, LEAD_ID, TIMESTAMP, engagement_keys
from samepage.definitions import Definitions
from samepage.settings import Settings
from serving.batch import BatchError
from serving.explain import vocabulary_of
from serving.scorer import Champion, Scored

APP_NAME = "samepage score --all"
RESULT_SCHEMA = "lead_id string, result string"


def session() -> Any:
    """The active Spark session, or a local one on every core (UTC, Arrow transfers)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise BatchError("--engine spark needs pyspark: pip install 'samepage[spark]' (Java 17 or later)") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors run this interpreter (its packages)
    builder = SparkSession.builder.appName(APP_NAME)
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit: local mode
        builder = builder.master("local[*]").config("spark.ui.enabled", "false").config("spark.driver.memory", "2g")
    return (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")  # the sources' times are nanoseconds
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "20000")
        .config("spark.ui.showConsoleProgress", "false")  # samepage's own progress bar counts the leads
        .getOrCreate()
    )


def latest_rows(spark: Any, sources: Sources, defs: Definitions, now: datetime) -> Any:
    """A DataFrame of every lead created at or before `now`: attributes joined with its latest engagement row.

    The sources keep nanosecond times, which Spark reads as longs (`nanosAsLong`): compared and
    ordered exactly as such, then handed on as timestamps (microseconds; features use whole seconds).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cutoff = pd.Timestamp(now).value  # epoch nanoseconds
    latest = Window.partitionBy(LEAD_ID).orderBy(F.col(TIMESTAMP).desc())

    def newest(path: Any, columns: list[str] | None = None) -> Any:
        times = [f.name for f in pq.read_schema(path) if pa.types.is_timestamp(f.type)]
        frame = spark.read.parquet(str(path)).where(F.col(TIMESTAMP) <= F.lit(cutoff))
        frame = frame.withColumn("_n", F.row_number().over(latest)).where(F.col("_n") == 1).drop("_n")
        for name in times:
            frame = frame.withColumn(name, F.timestamp_micros(F.expr(f"div(`{name}`, 1000)")))
        return frame if columns is None else frame.select(*columns)

    leads = newest(sources.attributes)
    if sources.engagement is not None:
        engagement = newest(sources.engagement, [LEAD_ID, *engagement_keys(defs), LAST_ACTIVITY_AT])
        leads = leads.join(engagement, on=LEAD_ID, how="left")
    return leads


def spark_results(
    settings: Settings, defs: Definitions, champion: Champion, sources: Sources, now: datetime, chunk: int, suggest: bool = True
) -> Iterator[list[Scored]]:
    """Answers (trend left to the sink), `chunk` at a time, scored by Spark executors."""
    spark = session()
    vocab = vocabulary_of(champion.bundle, defs)  # what the executors' explanations name (checked on each answer)
    portable = dataclasses.replace(champion, online=None)  # the Feast store stays here; each batch brings its features

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from samepage.answers import json_bytes
        from serving.score_all import score_frame
        from serving.scorer import Scorer, refreeze

        scorer = Scorer(settings, defs)
        refreeze()  # as in the local engine's scoring processes: Python's default GC thresholds cost them ~18 %
        for frame in batches:
            if len(frame) == 0:
                continue
            results = score_frame(scorer, portable, frame, now, suggest)
            yield pd.DataFrame(
                {
                    "lead_id": [r.answer["lead_id"] for r in results],
                    "result": [json_bytes(r.record(), fallback=str).decode() for r in results],
                }
            )

    # Partitions of about `chunk` leads: each task's answers (a few KB a lead) reach the driver in one piece.
    partitions = max(1, -(-sources.n_leads() // chunk))
    scored = latest_rows(spark, sources, defs, now).repartition(partitions).mapInPandas(score_batches, RESULT_SCHEMA)
    batch: list[Scored] = []
    for row in scored.toLocalIterator(prefetchPartitions=True):
        batch.append(Scored.from_record(json.loads(row["result"]), vocab))
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch

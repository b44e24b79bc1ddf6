"""Prometheus metrics in a per-app registry (two apps in one process never share counters)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
FEW = 64  # scores observed one by one below this (a single /v1/score)


class Metrics:
    """Requests, latency, score distribution, MQL verdicts, feedback and the loaded model."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "samepage_http_requests", "HTTP requests by route template and status", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "samepage_http_request_duration_seconds",
            "Time to answer, by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scores = Histogram(
            "samepage_score", "Distribution of SQL likelihood scores served", ["model_version"], buckets=SCORE_BUCKETS, registry=r
        )
        self.mql = Counter("samepage_mql_verdicts", "MQL verdicts served", ["model_version", "passed"], registry=r)
        self.feedback = Counter("samepage_feedback", "Feedback events by stage and outcome", ["stage", "outcome"], registry=r)
        self.ingested = Counter(
            "samepage_ingested", "Leads and events taken through the API, by kind and outcome", ["kind", "outcome"], registry=r
        )
        self.online_push_failures = Counter(
            "samepage_online_push_failures", "Stored API rows the online store could not take at once (retried)", registry=r
        )
        self.model_info = Gauge(
            "samepage_model_info",
            "The model scoring (1) by name, version and definitions version (points_rules in a cold start)",
            ["name", "version", "definitions_version"],
            registry=r,
        )
        self.ready = Gauge("samepage_ready", "1 when a champion that fits the definitions is loaded", registry=r)
        self.reloads = Counter("samepage_model_reloads", "Champion loads by outcome", ["outcome"], registry=r)
        self.out_of_range = Counter(
            "samepage_out_of_range_features",
            "Leads scored with a numeric feature outside the range the model was trained on, by feature",
            ["feature"],
            registry=r,
        )

    def observe_scores(self, version: str, scores: list[float], passed: list[bool]) -> None:
        """A batch's scores and verdicts: the buckets counted at once (a batch of 1,000 cost ~2 ms
        in `Histogram.observe` calls, and `score --all` a second per 100,000 leads)."""
        observe_many(self.scores.labels(version), scores)
        n_pass = sum(passed)
        if n_pass:
            self.mql.labels(version, "true").inc(n_pass)
        if len(passed) - n_pass:
            self.mql.labels(version, "false").inc(len(passed) - n_pass)

    def set_model(
        self, name: str | None, version: str | None, definitions_version: str | None, ready: bool | None = None
    ) -> None:
        """The model that scores (the points rules in a cold start); `ready` says whether it is a fitting champion."""
        with warnings.catch_warnings():  # mlflow sets PROMETHEUS_MULTIPROC_DIR; we are one process
            warnings.simplefilter("ignore")
            self.model_info.clear()
        if name and version:
            self.model_info.labels(name, version, definitions_version or "").set(1)
        self.ready.set(1 if (ready if ready is not None else bool(name and version)) else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def observe_many(hist: Histogram, amounts: Sequence[float]) -> None:
    """`hist.observe(a)` for every amount, as one increment per bucket: the same counts, and the same
    sum up to float rounding (summed pairwise, not one by one).

    Relies on prometheus_client's pinned histogram layout (a value per bucket, each counted in the
    first bucket whose upper bound is at or above it; the sum); tests compare it with `observe`.
    """
    if len(amounts) < FEW:  # numpy's set-up costs more than observing each
        for amount in amounts:
            hist.observe(amount)
        return
    values = np.asarray(amounts, dtype=np.float64)
    bounds = np.asarray(hist._upper_bounds, dtype=np.float64)
    kept = values[~np.isnan(values)]  # NaN is in no bucket (`NaN <= bound` is false), as with observe
    counts = np.bincount(np.searchsorted(bounds, kept, side="left"), minlength=len(bounds))
    hist._sum.inc(float(values.sum()))
    for bucket, n in zip(hist._buckets, counts.tolist(), strict=False):
        if n:
            bucket.inc(n)

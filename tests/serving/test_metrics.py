"""The score histogram counted a batch at a time equals Prometheus' own observe, value by value."""

from __future__ import annotations

import math
import uuid

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from serving.metrics import SCORE_BUCKETS, Metrics, observe_many


def _histogram(name: str) -> Histogram:
    # Names of their own: with PROMETHEUS_MULTIPROC_DIR set (mlflow sets it), equal names share their values.
    return Histogram(f"h_{name}_{uuid.uuid4().hex}", "test", ["v"], buckets=SCORE_BUCKETS, registry=CollectorRegistry())


def _samples(hist: Histogram) -> dict[tuple[str, str], float]:
    prefix = hist._name  # each sample's name without it: "h_sum", "h_bucket", "h_count"
    return {
        ("h" + s.name.removeprefix(prefix), s.labels.get("le", "")): s.value
        for m in hist.collect()
        for s in m.samples
        if not s.name.endswith("_created")
    }


def test_batch_counts_equal_observe_one_by_one() -> None:
    rng = np.random.default_rng(7)
    # On, just under and just over every bucket bound, the ends, and ordinary scores.
    bounds = np.array(SCORE_BUCKETS)
    edges = np.concatenate([bounds, np.nextafter(bounds, 0), np.nextafter(bounds, 2), [0.0, 1.0, 1.5, -0.1]])
    amounts = np.concatenate([edges, rng.random(500)]).tolist()
    one_by_one, batched = _histogram("one"), _histogram("batch")
    for a in amounts:
        one_by_one.labels("1").observe(a)
    observe_many(batched.labels("1"), amounts[:100])
    observe_many(batched.labels("1"), amounts[100:103])  # a few: observed one by one
    observe_many(batched.labels("1"), amounts[103:])  # counts add up across batches
    observe_many(batched.labels("1"), [])
    expected, got = _samples(one_by_one), _samples(batched)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        if key[0] == "h_sum":
            assert math.isclose(got[key], value, rel_tol=1e-12), key
        else:
            assert got[key] == value, key
    assert got[("h_count", "")] == len(amounts)


def test_nan_is_counted_in_no_bucket_as_with_observe() -> None:
    one_by_one, batched = _histogram("one"), _histogram("batch")
    for a in (0.3, math.nan):
        one_by_one.labels("1").observe(a)
    observe_many(batched.labels("1"), [0.3, math.nan])
    expected, got = _samples(one_by_one), _samples(batched)
    assert {k: v for k, v in got.items() if k[0] == "h_bucket"} == {k: v for k, v in expected.items() if k[0] == "h_bucket"}


def test_observe_scores_counts_scores_and_verdicts() -> None:
    metrics = Metrics()
    version = f"test-{uuid.uuid4().hex}"  # values of its own even where metrics of equal names share them
    metrics.observe_scores(version, [0.1, 0.7, 0.95], [False, True, True])
    text = metrics.registry.get_sample_value
    assert text("samepage_score_count", {"model_version": version}) == 3
    assert text("samepage_score_bucket", {"model_version": version, "le": "0.1"}) == 1
    assert text("samepage_score_bucket", {"model_version": version, "le": "0.7"}) == 2
    assert text("samepage_mql_verdicts_total", {"model_version": version, "passed": "true"}) == 2
    assert text("samepage_mql_verdicts_total", {"model_version": version, "passed": "false"}) == 1

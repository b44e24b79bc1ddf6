"""The MQL threshold from sales capacity and weekly lead volume."""

from __future__ import annotations

import numpy as np
import pandas as pd

from samepage.definitions import Definitions
from training.threshold import capacity_threshold, weekly_volume


def test_threshold_fills_capacity(definitions: Definitions) -> None:
    capacity = definitions.sla.capacity.mqls_per_week  # 6 reps x 20 = 120
    rng = np.random.default_rng(0)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(int)
    advice = capacity_threshold(definitions, y, p, weekly_leads=600.0)
    assert advice.capacity_per_week == capacity
    assert abs(advice.capacity.expected_mql_per_week - capacity) < 1.0
    assert abs(advice.capacity.share_of_leads - capacity / 600) < 1e-3
    assert advice.capacity.expected_sql_rate == y[p >= advice.capacity.value].mean()
    # The threshold in the definitions is reported on the same rows.
    current = advice.current
    assert current.value == definitions.mql.threshold
    assert current.expected_mql_per_week == (p >= definitions.mql.threshold).mean() * 600
    assert advice.metrics()["threshold_value"] == advice.capacity.value


def test_capacity_above_volume_sends_every_lead(definitions: Definitions) -> None:
    p = np.linspace(0.01, 0.99, 100)
    y = (p > 0.5).astype(int)
    advice = capacity_threshold(definitions, y, p, weekly_leads=50.0)
    assert advice.capacity.value == 0.0
    assert advice.capacity.expected_mql_per_week == 50.0


def test_weekly_volume_from_recent_weeks() -> None:
    horizon = pd.Timestamp("2026-06-01T00:00:00Z")
    days = pd.date_range(end=horizon, periods=26 * 7, freq="D")
    as_of = pd.Series(np.repeat(days, 10))  # 70 leads a week
    volume, basis = weekly_volume(as_of, horizon)
    assert abs(volume - 70) < 1.0 and "weeks before 2026-06-01" in basis
    one_time = pd.Series([horizon] * 500)
    volume, basis = weekly_volume(one_time, None)
    assert volume == 500 and "no timestamps" in basis


def test_leads_failing_a_criterion_are_not_mqls(definitions: Definitions) -> None:
    p = np.linspace(0.0, 1.0, 1000, endpoint=False)
    y = (p > 0.5).astype(int)
    eligible = np.arange(1000) % 2 == 0  # every other lead is a student, say
    advice = capacity_threshold(definitions, y, p, weekly_leads=1000.0, eligible=eligible)
    # 120 MQLs a week of 1,000 leads: the 120th best eligible lead sets the threshold.
    assert advice.capacity.value == np.sort(p[eligible])[::-1][119]
    assert abs(advice.capacity.expected_mql_per_week - 120) < 1e-9
    assert advice.current.expected_mql_per_week == ((p >= definitions.mql.threshold) & eligible).mean() * 1000

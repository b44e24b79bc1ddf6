"""Drift report: PSI by history deciles and by level, out-of-range share, unseen levels, base rate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from samepage.definitions import Definitions
from tests.training.test_models import synthetic_features
from training.drift import drift_report, feature_ranges, psi


def frames(defs: Definitions, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    history, y = synthetic_features(defs, 3000, seed)
    recent, y_recent = synthetic_features(defs, 1000, seed + 1)
    return history.assign(label=y), recent.assign(label=y_recent)


def test_the_same_population_raises_no_warning(definitions: Definitions) -> None:
    history, recent = frames(definitions)
    report = drift_report(definitions, history, recent, "test")
    assert report["warnings"] == []
    assert max(f["psi"] for f in report["features"]) < 0.05


def test_shifts_are_named_in_words(definitions: Definitions) -> None:
    history, recent = frames(definitions)
    recent = recent.assign(
        employees=recent["employees"] + 100.0,  # all above the history's maximum
        industry=np.where(np.arange(len(recent)) % 3 == 0, "brand new industry", recent["industry"]),
        label=(np.arange(len(recent)) % 10 < 8).astype(int),  # base rate up sharply
    )
    report = drift_report(definitions, history, recent, "test")
    by_key = {f["feature"]: f for f in report["features"]}
    assert by_key["employees"]["out_of_range_share"] == 1.0 and by_key["employees"]["psi"] > 0.25
    assert by_key["industry"]["unseen"] == ["brand new industry"] and by_key["industry"]["unseen_share"] > 0.3
    text = " | ".join(report["warnings"])
    assert report["warnings"][0].startswith("base rate changed")
    assert "(employees) shifted: PSI" in text and "(employees): 100% of the newest leads fall outside" in text
    assert "never saw (brand new industry)" in text
    assert "(demo_requests_90d)" not in text
    assert report["features"][0]["psi"] >= report["features"][-1]["psi"]  # largest shift first


def test_psi_and_ranges_by_hand(definitions: Definitions) -> None:
    assert psi(np.array([50.0, 50.0]), np.array([50.0, 50.0])) == 0.0
    # 0.5/0.5 → 0.9/0.1: (0.4 ln 1.8) + (-0.4 ln 0.2)
    assert abs(psi(np.array([5.0, 5.0]), np.array([9.0, 1.0])) - (0.4 * np.log(1.8) - 0.4 * np.log(0.2))) < 1e-9
    history, _ = frames(definitions)
    ranges = feature_ranges(definitions, history)
    assert ranges["employees"] == [history["employees"].min(), history["employees"].max()]
    assert "industry" not in ranges

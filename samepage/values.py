"""The small value rules every layer shares, each defined once: log-odds, missing, yes/no, UTC.

They decide how a score, an explanation, an import and a feature read the same value, so two
copies that drift apart would make the API, the page and the training set disagree.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, overload

import numpy as np
import pandas as pd
from scipy.special import expit

# Written yes/no as CRMs export it; compared after strip().lower().
TRUE_WORDS = frozenset({"true", "yes", "y", "t", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "no", "n", "f", "0", "0.0"})


@overload
def sigmoid(z: float) -> float: ...
@overload
def sigmoid(z: np.ndarray) -> np.ndarray: ...
def sigmoid(z: float | np.ndarray) -> float | np.ndarray:
    """Log-odds to probability, stable for large |z| (scipy's `expit`)."""
    if isinstance(z, np.ndarray):
        return np.asarray(expit(z), dtype=np.float64)
    return float(expit(z))


def logit(p: float) -> float:
    """Probability to log-odds; the inverse of `sigmoid`."""
    return math.log(p / (1.0 - p))


def is_missing(value: Any) -> bool:
    """None, NaN, NaT and pandas' NA: a value the model sees as missing (an empty list is not)."""
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def parse_bool(value: Any) -> bool | None:
    """A yes/no value from a bool, a number or a word in `TRUE_WORDS`/`FALSE_WORDS`; None if it is none."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if is_missing(value):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return True if value == 1 else False if value == 0 else None
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def utc_timestamp(value: pd.Timestamp | datetime | str) -> pd.Timestamp:
    """A timestamp in UTC: a naive one is taken to be UTC, an aware one is converted."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")

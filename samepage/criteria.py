"""THE rule for one required MQL criterion, over one value or a whole frame of leads.

Serving's verdict (`serving.mql`) and the definitions preview (`training.impact`, on the champion's
out-of-time predictions) both read it here, so a lead counts as meeting a criterion the same way
in an answer and in the expected MQLs a week.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from samepage.definitions import Criterion, Definitions
from samepage.values import is_missing


def check(criterion: Criterion, value: Any) -> bool:
    """Whether one criterion is met by a value (None/NaN: `if_missing` decides)."""
    if _missing(value):
        return criterion.if_missing == "met"
    if criterion.in_ is not None and not _member(value, criterion.in_):
        return False
    if criterion.not_in is not None and _member(value, criterion.not_in):
        return False
    if criterion.min is not None or criterion.max is not None:
        number = _number(value)
        if number is None:  # a bound on a value that is not a number cannot be shown to hold
            return False
        if criterion.min is not None and number < criterion.min:
            return False
        if criterion.max is not None and number > criterion.max:
            return False
    return True


def criteria_met(defs: Definitions, frame: pd.DataFrame) -> np.ndarray:
    """One bool per row: every required criterion of `defs` is met. A field the frame lacks is missing."""
    met = np.ones(len(frame), dtype=bool)
    for criterion in defs.mql.criteria:
        if criterion.field in frame.columns:
            values = frame[criterion.field].astype("object").to_numpy()
            met &= np.fromiter((check(criterion, v) for v in values), dtype=bool, count=len(values))
        else:
            met &= criterion.if_missing == "met"
    return met


def _missing(value: Any) -> bool:
    if is_missing(value):  # None, NaN, NaT, pd.NA (a parquet string column's missing value)
        return True
    try:
        return bool(value != value)  # NaN / pd.NA
    except (TypeError, ValueError):
        return False


def _member(value: Any, options: list[Any]) -> bool:
    if value in options:
        return True
    text = str(value).casefold()  # CRMs disagree on case ("student" vs "Student")
    return any(isinstance(o, str) and o.casefold() == text for o in options)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number

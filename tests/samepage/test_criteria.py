"""The MQL criteria rule over a frame of leads (the preview's and the threshold's), as serving reads one lead."""

from __future__ import annotations

import numpy as np
import pandas as pd

from samepage.criteria import check, criteria_met
from samepage.definitions import Definitions


def test_every_criterion_must_hold_and_missing_values_follow_if_missing(definitions: Definitions) -> None:
    frame = pd.DataFrame(
        {
            "seniority": pd.array(["VP", "student", pd.NA, "Manager"], dtype="string"),  # case-blind, as serving
            "industry": ["Software", "Software", None, "Competitor"],
            "unsubscribes_90d": [0.0, 0.0, np.nan, 0.0],
        }
    )
    assert criteria_met(definitions, frame).tolist() == [True, False, True, False]
    by_lead = [
        all(check(c, row.get(c.field)) for c in definitions.mql.criteria) for row in frame.astype(object).to_dict("records")
    ]
    assert by_lead == [True, False, True, False]


def test_a_field_the_frame_lacks_counts_as_missing(definitions: Definitions) -> None:
    frame = pd.DataFrame({"seniority": ["VP", "Student"]})
    assert criteria_met(definitions, frame).tolist() == [True, False]  # industry and unsubscribes: met when missing

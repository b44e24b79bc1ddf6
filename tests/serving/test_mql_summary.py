"""The verdict sentence never contradicts itself through rounding."""

from __future__ import annotations

import pytest

from samepage.definitions import Definitions
from serving.mql import verdict


@pytest.mark.parametrize(
    ("score", "shown"),
    [
        (0.3499, "0.3499 is below"),
        (0.34, "0.34 is below"),
        (0.35, "0.35 is at or above"),
        (0.35001, "0.35001 is at or above"),
        (0.72, "0.72 is at or above"),
    ],
)
def test_score_is_shown_with_enough_digits_to_stay_on_its_side(definitions: Definitions, score: float, shown: str) -> None:
    assert definitions.mql.threshold == 0.35
    summary = verdict(definitions, score, {}).summary
    assert f"the score {shown} the threshold 0.35" in summary

"""The verdict sentence never contradicts itself through rounding."""

from __future__ import annotations

import pytest

from samepage.definitions import Definitions
from serving.mql import shown_percent, verdict


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


@pytest.mark.parametrize(
    ("score", "threshold", "shown"),
    [(0.349, 0.35, "34.9%"), (0.3499, 0.35, "34.99%"), (0.35, 0.35, "35%"), (0.6, 0.35, "60%"), (0.351, 0.35, "35.1%")],
)
def test_the_page_percent_never_rounds_onto_the_other_side_of_the_threshold(score: float, threshold: float, shown: str) -> None:
    assert shown_percent(score, threshold) == shown

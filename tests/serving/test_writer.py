"""The latest-score writer keeps every row the store can hold, even when one in its batch is bad."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from samepage.answers import vocabulary
from samepage.records import RecordStore
from serving.explain import Explanation
from serving.scorer import Scored
from serving.writer import ScoreWriter
from tests.conftest import IN_CI
from tests.utils.postgres import fresh_schema

VOCAB = vocabulary(("employees", "industry"), ("Company size", "Industry"))


def _result(lead_id: str, score: float = 0.5, scored_at: datetime = datetime(2026, 11, 1, tzinfo=UTC)) -> Scored:
    answer: dict[str, Any] = {
        "lead_id": lead_id,
        "score": score,
        "mql": {"passed": score >= 0.5},
        "explanation": None,
        "model": {"name": "sql_likelihood", "version": "1"},
        "definitions_version": "1+abc",
        "scored_at": scored_at,
    }
    return Scored(answer, Explanation(score, -1.0, VOCAB, [0.25, -0.5], [1, 0], [420, None], [], []))


@pytest.mark.services
def test_one_unstorable_id_sets_aside_only_its_own_row() -> None:
    with fresh_schema(IN_CI) as url:
        store = RecordStore(url)
        writer = ScoreWriter(store)
        try:
            writer.submit([_result("good-1", 0.7), _result("bad-\x00-id"), _result("good-2", 0.2)])
            writer.flush()
        finally:
            writer.close()
        kept = store.latest_scores()
        store.close()
    assert sorted(kept["lead_id"]) == ["good-1", "good-2"]
    assert kept.set_index("lead_id").loc["good-1", "score"] == 0.7


def test_previous_scores_see_queued_scores_before_they_are_written(tmp_path) -> None:
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    writer = ScoreWriter(store)
    try:
        assert writer.previous_scores(["a"]) == {}
        writer.submit([_result("a", 0.3)])
        assert writer.previous_scores(["a", "b"]) == {"a": (0.3, datetime(2026, 11, 1, tzinfo=UTC))}  # queued or written
        writer.flush()
        assert store.previous_scores(["a", "b"]) == {"a": (0.3, datetime(2026, 11, 1, tzinfo=UTC))}
        later = _result("a", 0.6, datetime(2026, 11, 2, tzinfo=UTC))
        writer.submit([later])
        assert writer.previous_scores(["a"]) == {"a": (0.6, datetime(2026, 11, 2, tzinfo=UTC))}
        writer.flush()
        assert writer.previous_scores(["a"]) == {"a": (0.6, datetime(2026, 11, 2, tzinfo=UTC))}
        assert writer._pending == {}  # forgotten once written
        kept = store.latest_score("a")  # stored compact, read back whole
        assert kept is not None and kept["payload"]["explanation"]["contributions"] == [
            {"feature": "industry", "label": "Industry", "value": None, "contribution": -0.5},
            {"feature": "employees", "label": "Company size", "value": 420, "contribution": 0.25},
        ]
    finally:
        writer.close()
        store.close()


def test_a_store_that_cannot_answer_costs_the_trend_not_the_score(tmp_path) -> None:
    class Down(RecordStore):
        def previous_scores(self, lead_ids: list[str]) -> dict[str, tuple[float, datetime]]:
            raise ConnectionError("the database went away")

    store = Down(f"sqlite:///{tmp_path / 'records.db'}")
    writer = ScoreWriter(store)
    try:
        assert writer.previous_scores(["a"]) == {}
    finally:
        writer.close()
        store.close()

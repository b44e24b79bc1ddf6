"""The stored form of an answer: `compact` then `expand` gives the ScoreOut dict back, byte for byte."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samepage.answers import Vocabulary, compact, expand, json_bytes, vocabulary

KEYS = ("industry", "employees", "icp_industry", "is_partner", "page_views_7d", "days_since_last_activity")
LABELS = ("Industry", "Company size (employees)", "Industry is in the ICP", "Partner? (yes/no)", "Views — 7 days", "Días")
VALUES: list[Any] = ["Software", 420, 1, True, 0, None]  # a category, numbers, a boolean, a missing value


def make_answer(seed: int, keys: tuple[str, ...] = KEYS, labels: tuple[str, ...] = LABELS) -> dict[str, Any]:
    """A ScoreOut-shaped dict: contributions over every feature, largest |contribution| first, ties kept."""
    rng = random.Random(seed)
    pushes = [rng.choice([0.0, -0.0, 0.25, -0.25, rng.uniform(-2, 2), 1e-300, 0.1 + 0.2]) for _ in keys]
    order = sorted(range(len(keys)), key=lambda j: -abs(pushes[j]))
    values = [rng.choice([v, None]) if seed % 3 == 0 else v for v in VALUES][: len(keys)]
    items = [{"feature": keys[j], "label": labels[j], "value": values[j], "contribution": pushes[j]} for j in order]
    return {
        "lead_id": f"L-{seed}",
        "score": rng.random(),
        "mql": {"passed": seed % 2 == 0, "summary": "Not an MQL yet.", "to_pass": None, "score_if": None},
        "explanation": {
            "base_value": -1.5 + seed / 7,
            "contributions": items,
            "reasons_up": [f"{labels[order[0]]}: up (raises the score)"],
            "reasons_down": [],
        },
        "model": {"name": "sql_likelihood", "version": "3", "kind": "learned", "calibrated": True},
        "grade": "B",
        "trend": None if seed % 2 else {"previous_score": 0.5, "previous_at": "2026-11-01T00:00:00Z", "delta": 0.125},
        "definitions_version": "1.1.0+abc",
        "scored_at": "2026-12-06T12:00:00Z",
    }


@pytest.mark.parametrize("seed", range(40))
def test_an_answer_expands_to_the_same_bytes_even_through_json(seed: int) -> None:
    vocab = vocabulary(KEYS, LABELS)
    answer = make_answer(seed)
    stored = compact(answer, vocab)
    assert "vocabulary" in stored["explanation"] and "label" not in json_bytes(stored).decode()
    read = json.loads(json_bytes(stored))  # as the record store keeps it and reads it
    assert json_bytes(expand(read, {vocab.id: vocab})) == json_bytes(answer)
    assert expand(read, {vocab.id: vocab}) == answer


def test_an_answer_stored_whole_reads_back_unchanged() -> None:
    answer = make_answer(1)
    assert json_bytes(expand(json.loads(json_bytes(answer)), {})) == json_bytes(answer)
    assert expand({"score": 0.2}, {}) == {"score": 0.2}  # any payload without a vocabulary is left alone


def test_the_vocabulary_id_is_a_hash_of_its_content() -> None:
    vocab = vocabulary(KEYS, LABELS)
    assert vocabulary(KEYS, LABELS) is vocab and Vocabulary(KEYS, LABELS).id == vocab.id
    assert Vocabulary.from_text(vocab.text()) == vocab and Vocabulary.from_text(vocab.text()).id == vocab.id
    relabelled = Vocabulary(KEYS, (*LABELS[:-1], "Days since the last activity"))
    reordered = Vocabulary(KEYS[::-1], LABELS[::-1])
    assert len({vocab.id, relabelled.id, reordered.id}) == 3


def test_compact_refuses_an_answer_its_vocabulary_does_not_word() -> None:
    vocab = vocabulary(KEYS, LABELS)
    answer = make_answer(2)
    with pytest.raises(ValueError, match="not in vocabulary"):
        compact(answer, Vocabulary(KEYS, (*LABELS[:-1], "Other words")))
    missing = {**answer, "explanation": {**answer["explanation"], "contributions": answer["explanation"]["contributions"][1:]}}
    with pytest.raises(ValueError, match="each feature"):
        compact(missing, vocab)
    with pytest.raises(KeyError):
        expand(json.loads(json_bytes(compact(answer, vocab))), {})


def test_json_bytes_writes_valid_json_with_numpy_values_and_fails_clearly_otherwise() -> None:
    answer = make_answer(3)
    assert json.loads(json_bytes(answer)) == json.loads(json.dumps(answer))  # the same document as the standard library's
    odd = {"score": np.float64(0.25), "passed": np.bool_(True), "counts": np.array([1, 2]), "missing": float("nan")}
    assert json.loads(json_bytes(odd)) == {"score": 0.25, "passed": True, "counts": [1, 2], "missing": None}
    assert json_bytes({"x": float("nan"), "y": float("-inf")}) == b'{"x":null,"y":null}'  # never the invalid NaN / Infinity
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_bytes({"when": object()})
    assert json.loads(json_bytes({"when": Path("a")}, fallback=str)) == {"when": "a"}

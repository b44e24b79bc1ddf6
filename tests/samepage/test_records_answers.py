"""Compact latest-score payloads in a real record store: read back as the answers they were, vocabularies once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from samepage import records
from samepage.answers import Vocabulary, compact, json_bytes, vocabulary
from samepage.records import RecordStore, migrate, schema_revision
from tests.conftest import IN_CI
from tests.samepage.test_answers import KEYS, LABELS, make_answer
from tests.utils.postgres import fresh_schema

AT = datetime(2026, 12, 6, 12, tzinfo=UTC)


def row_of(answer: dict[str, Any], payload: str) -> dict[str, Any]:
    """A save_scores row for an answer, its payload as given."""
    return {
        "lead_id": answer["lead_id"],
        "score": answer["score"],
        "mql_passed": answer["mql"]["passed"],
        "model_name": answer["model"]["name"],
        "model_version": answer["model"]["version"],
        "definitions_version": answer["definitions_version"],
        "scored_at": AT,
        "payload": payload,
    }


def compact_row(answer: dict[str, Any], vocab: Vocabulary) -> dict[str, Any]:
    return row_of(answer, json_bytes(compact(answer, vocab)).decode())


def vocabulary_rows(store: RecordStore) -> list[tuple[str, str]]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(records.vocabularies_table.c.id, records.vocabularies_table.c.features))]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'records.db'}"
        return
    with fresh_schema(IN_CI) as pg:
        yield pg


def test_compact_answers_read_back_as_given_and_each_vocabulary_is_stored_once(url: str) -> None:
    vocab = vocabulary(KEYS, LABELS)
    other = Vocabulary(KEYS, (*LABELS[:-1], "Days since the last activity"))  # definitions that word one feature anew
    answers = [make_answer(i) for i in range(150)]  # more than one upsert statement (UPSERT_ROWS)
    again = {**make_answer(7), "score": 0.875}  # a lead scored twice: the last answer is kept
    store = RecordStore(url)
    try:
        store.save_scores([compact_row(a, vocab) for a in answers], [vocab])
        store.save_scores([compact_row(again, vocab)], [vocab, vocab])
        fresh = RecordStore(url)  # another process: nothing cached, the row is there already
        fresh.save_scores([compact_row(make_answer(200), vocab)], [vocab])
        relabelled = make_answer(201, labels=other.labels)
        fresh.save_scores([compact_row(relabelled, other)], [other])
        fresh.close()
        reader = RecordStore(url)  # reads vocabularies from the store
        for answer in [*answers[:7], again, *answers[8:], make_answer(200), relabelled]:
            kept = reader.latest_score(answer["lead_id"])
            assert kept is not None and json_bytes(kept["payload"]) == json_bytes(answer)
        reader.close()
        assert sorted(vocabulary_rows(store)) == sorted([(vocab.id, vocab.text()), (other.id, other.text())])
    finally:
        store.close()


def test_a_payload_stored_whole_reads_back_unchanged(url: str) -> None:
    answer = make_answer(3)
    store = RecordStore(url)
    try:
        store.save_scores([row_of(answer, json_bytes(answer).decode())])
        kept = store.latest_score(answer["lead_id"])
        assert kept is not None and json_bytes(kept["payload"]) == json_bytes(answer)
        assert vocabulary_rows(store) == []
    finally:
        store.close()


def test_a_compact_payload_without_its_vocabulary_is_an_error_not_a_wrong_answer(tmp_path: Path) -> None:
    vocab = vocabulary(KEYS, LABELS)
    store = RecordStore(f"sqlite:///{tmp_path / 'records.db'}")
    try:
        store.save_scores([compact_row(make_answer(4), vocab)])  # the vocabulary not given
        with pytest.raises(KeyError, match=vocab.id):
            store.latest_score("L-4")
    finally:
        store.close()


def test_a_store_at_0003_with_scores_is_migrated_and_its_rows_read_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'records.db'}"
    engine = sa.create_engine(url)
    migrate(engine, "0003")
    old = [make_answer(i) for i in range(5)]
    with engine.begin() as conn:
        conn.execute(records.scores_table.insert(), [row_of(a, json.dumps(a)) for a in old])
    assert schema_revision(engine) == "0003" and "answer_vocabularies" not in sa.inspect(engine).get_table_names()
    engine.dispose()

    store = RecordStore(url)
    try:
        assert schema_revision(store.engine) == "0004"
        vocab = vocabulary(KEYS, LABELS)
        new = {**make_answer(1), "score": 0.5}  # one of the old leads scored again, stored compact
        store.save_scores([compact_row(new, vocab)], [vocab])
        for answer in [old[0], new, *old[2:]]:
            kept = store.latest_score(answer["lead_id"])
            assert kept is not None and json_bytes(kept["payload"]) == json_bytes(answer)
    finally:
        store.close()

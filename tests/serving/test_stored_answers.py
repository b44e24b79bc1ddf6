"""Answers kept in the record store (compact) read back as the API answered them and as `score --all` made them."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from features.offline import ChunkFeatures, Sources, lead_chunks
from samepage import records
from samepage.answers import json_bytes
from samepage.definitions import Definitions
from samepage.records import RecordStore
from samepage.settings import Settings
from serving.app import create_app
from serving.batch import output_columns
from serving.explain import vocabulary_of
from serving.score_all import finish, score_frame
from serving.scorer import Scored, Scorer
from tests.serving.conftest import AUTH, lead_ids, score_body

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def app_client(own_workspace_module: Settings, definitions: Definitions) -> Iterator[TestClient]:
    app = create_app(own_workspace_module, definitions, access_log=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def kept_bytes(store: RecordStore, lead_id: str) -> bytes:
    kept = store.latest_score(lead_id)
    assert kept is not None, lead_id
    return json_bytes(kept["payload"])


def stored_payloads(store: RecordStore) -> dict[str, str]:
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(records.scores_table.c.lead_id, records.scores_table.c.payload)).all())


def value_types(answers: list[dict[str, Any]]) -> set[type]:
    return {type(c["value"]) for a in answers for c in a["explanation"]["contributions"]}


def test_api_answers_read_back_byte_for_byte(app_client: TestClient, demo_leads: pd.DataFrame) -> None:
    ids = lead_ids(demo_leads, 30, seed=11)
    bodies = [score_body(i) for i in ids[:18]]
    bodies += [
        score_body(ids[18], industry="Software", employees=420, country="Canada", seniority="Director"),
        score_body("stored-new-1", source="Webinar"),  # a lead the store does not know: most features missing
        score_body("stored-new-2", industry="Not a known industry", employees=0, annual_revenue=12.5),
    ]
    answered: dict[str, bytes] = {}
    for request in bodies:
        resp = app_client.post("/v1/score", json=request, headers=AUTH)
        assert resp.status_code == 200, resp.text
        answered[request["lead_id"]] = resp.content
    batch = app_client.post("/v1/score/batch", json={"leads": [{"lead_id": i} for i in ids[19:]]}, headers=AUTH)
    assert batch.status_code == 200, batch.text
    answered.update({r["lead_id"]: json_bytes(r) for r in batch.json()["results"]})
    twice = app_client.post("/v1/score", json=score_body(ids[0], demo_requests_90d=3), headers=AUTH)  # scored again
    assert json.loads(twice.content)["trend"] is not None
    answered[ids[0]] = twice.content
    answers = [json.loads(b) for b in answered.values()]
    assert {type(None), str, int, float} <= value_types(answers)  # missing values, categories, counts, numbers

    state = app_client.app.state  # type: ignore[attr-defined]
    state.writer.flush()
    for lead_id, body in answered.items():
        assert kept_bytes(state.records, lead_id) == body
    payloads = stored_payloads(state.records)
    for lead_id, body in answered.items():  # kept compact: no contribution dicts, well under half the answer
        explanation = json.loads(payloads[lead_id])["explanation"]
        assert all(type(c) is float for c in explanation["contributions"]) and len(payloads[lead_id]) < len(body) / 2


@pytest.fixture(scope="module")
def chunk_scored(own_workspace_module: Settings, definitions: Definitions) -> tuple[Scorer, list[Scored], pd.DataFrame]:
    scorer = Scorer(own_workspace_module, definitions)
    scorer.refresh()
    assert scorer.champion is not None
    frame = next(lead_chunks(Sources.of(own_workspace_module, definitions), definitions, pd.Timestamp(NOW), 400))
    return scorer, score_frame(scorer, scorer.champion, frame, NOW), frame


def test_score_all_answers_are_the_api_answers_and_read_back_byte_for_byte(
    own_workspace_module: Settings, definitions: Definitions, chunk_scored: tuple[Scorer, list[Scored], pd.DataFrame]
) -> None:
    scorer, scored, frame = chunk_scored
    ids = [s.answer["lead_id"] for s in scored]
    previous = {ids[0]: (0.25, datetime(2026, 11, 1, tzinfo=UTC)), ids[5]: (0.75, datetime(2026, 11, 2, tzinfo=UTC))}
    chunk = finish(scored, previous)
    contracts = [s.contract() for s in scored]
    assert contracts[0]["trend"] is not None and contracts[1]["trend"] is None
    assert {type(None), str, int, float} <= value_types(contracts)
    # The API's way (Scorer.score on the same features and time) answers the same, trend aside.
    assert scorer.champion is not None
    reading = dataclasses.replace(scorer.champion, online=ChunkFeatures(frame, definitions))
    api = scorer.score([(i, {}) for i in ids], reading, now=NOW)
    for mine, theirs in zip(contracts, api, strict=True):
        assert json_bytes({**mine, "trend": None}) == json_bytes(theirs)
    # The output file's columns as they were made from the contract's dicts.
    out = chunk.table.to_pylist()
    for row, answer in zip(out, contracts, strict=True):
        shown = {c["feature"]: c["contribution"] for c in answer["explanation"]["contributions"]}
        assert row["contributions"] == json_bytes(shown).decode()
        assert row["reasons_up"] == "; ".join(answer["explanation"]["reasons_up"])
    store = RecordStore.from_settings(own_workspace_module)
    try:
        store.save_scores(chunk.rows, chunk.vocabularies)
        store.save_scores(chunk.rows[:3], chunk.vocabularies)  # the same leads again: still one vocabulary row
        for answer in contracts:
            assert kept_bytes(store, answer["lead_id"]) == json_bytes(answer)
        with store.engine.connect() as conn:
            kept_ids = conn.execute(sa.select(records.vocabularies_table.c.id)).scalars().all()
        assert kept_ids.count(vocabulary_of(scorer.champion.bundle, definitions).id) == 1
    finally:
        store.close()


def test_an_answer_back_from_its_stored_form_writes_the_same_row(
    definitions: Definitions, chunk_scored: tuple[Scorer, list[Scored], pd.DataFrame]
) -> None:
    """What the Spark engine does: executors send `record()` as JSON, the driver rebuilds the answer."""
    scorer, scored, _frame = chunk_scored
    assert scorer.champion is not None
    vocab = vocabulary_of(scorer.champion.bundle, definitions)
    for s in scored[:50]:
        back = Scored.from_record(json.loads(json_bytes(s.record())), vocab)
        assert json_bytes(back.contract()) == json_bytes(s.contract())
        assert output_columns([back]) == output_columns([s])

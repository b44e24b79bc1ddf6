"""The SQLite online read (`features.online_read`) decodes stored values exactly as protobuf does and finds
rows by Feast's own entity keys; checked against Feast's `get_online_features`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import DoubleList, Int64List, StringList
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from features.feast_repo import open_store
from features.online_read import proto_column, string_keys, values_column
from features.store import OnlineFeatures, build_features
from samepage.definitions import Definitions
from samepage.settings import Settings
from samepage.tables import CanonicalTables, empty_stages, write_tables
from tests.conftest import make_event, make_lead

COLUMNS: dict[str, list[ValueProto]] = {
    "doubles": [ValueProto(double_val=x) for x in (0.0, -0.0, 1.5, -2.25e300, 5e-324, float("inf"))] + [ValueProto()],
    "doubles and a float": [ValueProto(double_val=1.0), ValueProto(float_val=2.5), ValueProto()],
    "strings": [ValueProto(string_val=x) for x in ("", "Software", "Zürich 東京", "x" * 127, "y" * 128, "z" * 400)],
    "short strings": [ValueProto(string_val=x) for x in ("", "abc", "seven77", "ü" * 20)] + [ValueProto()],
    "nine-byte strings": [ValueProto(string_val="1234567"), ValueProto(string_val="abcdefg"), ValueProto()],
    "a string beside a double": [ValueProto(string_val="1234567"), ValueProto(double_val=3.0)],
    "times": [ValueProto(unix_timestamp_val=x) for x in (0, 1_767_225_600, -86_400)] + [ValueProto()],
    "integers": [ValueProto(int64_val=x) for x in (0, -1, 2**62)] + [ValueProto()],
    "booleans": [ValueProto(bool_val=True), ValueProto(bool_val=False), ValueProto()],
    "string lists": [
        ValueProto(string_list_val=StringList(val=["page_view", "email_click"])),
        ValueProto(),
        ValueProto(string_list_val=StringList()),
    ],
    "integer lists": [ValueProto(int64_list_val=Int64List(val=[1, 2**40])), ValueProto()],
    "double lists": [ValueProto(double_list_val=DoubleList(val=[1.0, 2.0])), ValueProto()],
    "all missing": [ValueProto(), ValueProto()],
}


def _same(ours: object, theirs: object) -> None:
    if isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray) and ours.dtype == theirs.dtype
        np.testing.assert_array_equal(ours, theirs)
        if theirs.dtype.kind == "f":  # -0.0 stays -0.0
            assert np.signbit(ours).tolist() == np.signbit(theirs).tolist()
    else:
        assert ours == theirs


@pytest.mark.parametrize("kind", list(COLUMNS))
def test_stored_values_decode_as_protobuf_parses_them(kind: str) -> None:
    values = COLUMNS[kind]
    blobs = [v.SerializeToString() for v in values]
    _same(values_column(blobs), proto_column([ValueProto.FromString(b) for b in blobs]))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, definitions: Definitions) -> tuple[Settings, Definitions]:
    from tests.conftest import DEFINITIONS_FILE

    home: Path = tmp_path_factory.mktemp("online-read") / "workspace"
    settings = Settings(home=home, definitions=DEFINITIONS_FILE, _env_file=None)
    ids = ["L-1", "lead ü/42", "x" * 300]
    leads = pd.DataFrame([make_lead(lead_id=i) for i in ids])
    events = pd.DataFrame([make_event(lead_id=i, occurred_at=pd.Timestamp("2026-02-01T09:00:00Z")) for i in ids])
    write_tables(settings.data_dir, CanonicalTables(leads, events, empty_stages()))
    build_features(settings, definitions, progress=False, until=pd.Timestamp("2026-03-01T00:00:00Z"))
    return settings, definitions


@pytest.mark.parametrize("lead_id", ["L-1", "lead ü/42", "", "x" * 300, "not stored"])
def test_keys_are_feasts_own(built: tuple[Settings, Definitions], lead_id: str) -> None:
    settings, defs = built
    online = OnlineFeatures(settings, defs)
    reader = online._sqlite
    assert reader is not None
    key = EntityKeyProto(join_keys=["lead_id"], entity_values=[ValueProto(string_val=lead_id)])
    version = open_store(settings).config.entity_key_serialization_version
    assert string_keys(reader._head, [lead_id])[0] == serialize_entity_key(key, entity_key_serialization_version=version)


def test_read_equals_feasts_online_features(built: tuple[Settings, Definitions]) -> None:
    """Every field of stored and unknown leads (odd ids included, in any order, repeated) as Feast answers it."""
    settings, defs = built
    online = OnlineFeatures(settings, defs)
    ids = ["x" * 300, "L-1", "not stored", "lead ü/42", "L-1", "x" * 300]
    ours = online._read_sqlite(ids)
    theirs = online._read_feast(ids)
    assert ours.keys() == theirs.keys()
    for name in theirs:
        _same(ours[name], theirs[name])
    assert np.isnat(ours["created_at"]).tolist() == [False, False, True, False, False, False]  # the unknown lead

"""Many leads' rows into Feast's SQLite online store at once: the rows Feast's own write stores, built by columns.

`FeatureStore.write_to_online_store` on the SQLite store turns every value into a `ValueProto` in
Python and runs one upsert per lead and field (1,000,000 leads x 13 fields: most of the build's
time). `SqliteViewWriter` writes the same rows to the same table through the store's own
connection. The serialized values are built a column at a time (a double is a tag byte and 8 bytes,
a string a tag, its length and its bytes, a list its items' encodings joined; varints in numpy),
`value_text` as Feast's `extract_text_and_num` gives it, the times through the datetime adapter Feast
registers with sqlite3; then Feast's own upsert runs 500 rows a statement, in Feast's row order, one
transaction per batch. Whatever it cannot match (another online store, vector or `value_num` columns,
a field mapping, a type it has no exact path for) is written by `write_to_online_store` itself, and
lists of other types or with null items go through Feast's own conversion.
tests/features/test_online_write.py compares both tables byte for byte.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureStore, FeatureView
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from features.online_read import string_key_head, string_keys

_ROWS_PER_STATEMENT = 500  # 3,000 parameters: under SQLite's limit (32,766; 999 before 3.32, checked when writing)
Values = tuple[list[bytes], list[str | None]]  # one field's serialized values and value_text, per row
_DOUBLE = np.dtype([("tag", "u1"), ("value", "<f8")])
_DOUBLE_TAG = 0x29  # field 5 (double_val), 8 bytes: every double serializes to 9 bytes
_STRING_TAG = b"\x12"  # field 2 (string_val), length-delimited
_STRING_LIST_TAG = b"\x62"  # field 12 (string_list_val), length-delimited
_INT64_LIST_TAG = b"\x72"  # field 14 (int64_list_val), length-delimited
_BOOL = {True: (b"\x38\x01", "True"), False: (b"\x38\x00", "False"), None: (b"", None)}  # field 7 (bool_val)
# Lists and sets: string and int64 lists are built here, any other (or with null items) Feast converts
# itself, column by column, from the values it would see.
_FEAST_CONVERTED = frozenset(t for t in ValueType if t.name.endswith(("_LIST", "_SET")))


class SqliteViewWriter:
    """Writes batches of one feature view's source rows to the online store as `write_to_online_store` does.

    Create once per view and write batch by batch; on any store but Feast's SQLite one (or a SQLite
    configuration it does not reproduce) every batch goes to `write_to_online_store`.
    """

    def __init__(self, store: FeatureStore, view: str) -> None:
        from feast.infra.online_stores.sqlite import SqliteOnlineStore, _table_id

        self._store = store
        self._name = view
        online_store = store._get_provider().online_store
        feature_view = store.get_feature_view(view)
        config = store.config
        self._fields = [(f.name, f.dtype.to_value_type()) for f in feature_view.features]
        self._join_key = _single_string_join_key(feature_view)
        self._version = config.entity_key_serialization_version
        self._head = string_key_head(self._join_key, self._version) if self._join_key else b""
        source = feature_view.batch_source
        self._ours = (
            isinstance(online_store, SqliteOnlineStore)
            and not getattr(config.online_store, "vector_enabled", False)  # a vector_value column
            and not getattr(config.online_store, "enable_openai_compatible_store", False)  # a value_num column
            and bool(self._head)
            and source is not None
            and not source.field_mapping
            and not source.created_timestamp_column
        )
        self._timestamp = source.timestamp_field if source is not None else ""
        self._table = ""
        if self._ours and isinstance(online_store, SqliteOnlineStore):
            versioned = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
            self._table = _table_id(config.project, feature_view, versioned)
            self._conn: sqlite3.Connection = online_store._get_conn(config)
        # Feast's own statement (SqliteOnlineStore.online_write_batch, without value_num / vector_value), for
        # up to `_ROWS_PER_STATEMENT` rows at once: SQLite inserts a VALUES list row by row, each with its
        # own upsert, so this is Feast's sequence of statements with less binding per row.
        self._statements: dict[int, str] = {}

    @property
    def direct(self) -> bool:
        """Whether batches are written here (True) or handed to `write_to_online_store` (False)."""
        return self._ours

    def write(self, rows: pa.Table | pa.RecordBatch) -> None:
        """Write these source rows (the view's entity, timestamp and feature columns) in one transaction."""
        table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
        if not self._ours or not self._writable(table):
            self._store.write_to_online_store(self._name, table.to_pandas())
            return
        n = table.num_rows
        if n == 0 or all(_all_missing(table.column(name)) for name, _ in self._fields):
            return  # write_to_online_store writes nothing then (with a warning)
        columns = [self._values(table.column(name), kind) for name, kind in self._fields]
        keys = self._keys(table.column(self._join_key))
        stamps = self._event_ts(table.column(self._timestamp))
        f = len(columns)
        # Feast's order: a lead's fields one after another, in the view's field order.
        params = np.empty((n, f, 6), dtype=object)
        params[:, :, 0] = _objects(keys)[:, None]
        params[:, :, 1] = _objects([name for name, _ in self._fields])[None, :]
        params[:, :, 4] = _objects(stamps)[:, None]
        for j, (blobs, text) in enumerate(columns):
            params[:, j, 2] = blobs
            params[:, j, 3] = text
        flat = params.reshape(-1)
        per = min(_ROWS_PER_STATEMENT, self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 6)
        whole = (n * f // per) * per * 6
        with self._conn:
            if whole:
                self._conn.executemany(self._upsert(per), flat[:whole].reshape(-1, per * 6).tolist())
            if whole < len(flat):
                self._conn.execute(self._upsert((len(flat) - whole) // 6), flat[whole:].tolist())

    def _upsert(self, rows: int) -> str:
        """Feast's upsert of `rows` rows in one statement."""
        if rows not in self._statements:
            self._statements[rows] = (
                f"INSERT INTO {_quote(self._table)} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
                f"VALUES {', '.join(['(?, ?, ?, ?, ?, ?)'] * rows)} ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
                "value = excluded.value, value_text = excluded.value_text, event_ts = excluded.event_ts, "
                "created_ts = excluded.created_ts;"
            )
        return self._statements[rows]

    def _writable(self, table: pa.Table) -> bool:
        """Whether every column this batch needs has a type written here exactly (else Feast writes it)."""
        names = set(table.column_names)
        if not {self._join_key, self._timestamp, *(name for name, _ in self._fields)} <= names:
            return False  # Feast raises its own error
        key, stamps = table.column(self._join_key), table.column(self._timestamp)
        if not _is_string(key.type) or key.null_count or not pa.types.is_timestamp(stamps.type) or stamps.null_count:
            return False
        return all(_exact(table.column(name).type, kind) for name, kind in self._fields)

    def _keys(self, ids: pa.ChunkedArray) -> list[bytes]:
        return string_keys(self._head, ids.to_pylist())

    def _values(self, column: pa.ChunkedArray, kind: ValueType) -> Values:
        if kind == ValueType.DOUBLE:
            return _doubles(column)
        if kind == ValueType.STRING:
            return _strings(column)
        if kind == ValueType.BOOL:
            pairs = [_BOOL[v] for v in column.to_pylist()]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        if kind == ValueType.UNIX_TIMESTAMP:
            return _times(column)
        items = column.type.value_type if pa.types.is_list(column.type) else None
        if kind == ValueType.STRING_LIST and items is not None and _is_string(items) and _no_missing_items(column):
            return _string_lists(column)
        if kind == ValueType.INT64_LIST and items is not None and pa.types.is_int64(items) and _no_missing_items(column):
            return _int64_lists(column)
        return _feast_converted(column, kind)

    def _event_ts(self, stamps: pa.ChunkedArray) -> list[Any]:
        """Each row's event time as sqlite3 binds it for Feast: Feast passes a naive UTC datetime (microseconds)
        and the store binds it through the datetime adapter registered with sqlite3 (Feast's own registers
        one: epoch seconds). Each distinct time is adapted once."""
        micros = np.asarray(stamps.to_numpy(zero_copy_only=False)).astype("datetime64[us]")
        distinct, where = np.unique(micros, return_inverse=True)
        adapt = _datetime_adapter()
        bound = [adapt(t) for t in distinct.tolist()]
        return [bound[i] for i in where.tolist()]


def _single_string_join_key(view: FeatureView) -> str:
    """The view's one join key when it is a string (ours: lead_id), else "" (then Feast writes)."""
    columns = view.entity_columns
    if len(columns) == 1 and columns[0].dtype.to_value_type() == ValueType.STRING:
        return columns[0].name
    return ""


def _quote(identifier: str) -> str:
    """Feast's quoting of the table name (`sqlite._quote_id`)."""
    return '"' + identifier.replace('"', '""') + '"'


def _datetime_adapter() -> Callable[[datetime], Any]:
    """What sqlite3 turns a datetime parameter into now: the adapter registered last (Feast registers
    epoch seconds when its SQLite store is imported), else the standard library's ISO text."""
    adapters: dict[tuple[type, type], Callable[[datetime], Any]] = getattr(sqlite3, "adapters", {})
    return adapters.get((datetime, sqlite3.PrepareProtocol), lambda value: value.isoformat(" "))


def _objects(values: Sequence[Any]) -> np.ndarray:
    """The values as a 1-d object array (bytes and strings stay whole)."""
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _exact(kind: pa.DataType, value_type: ValueType) -> bool:
    """The Arrow types built here for each Feast value type: what Feast gets from them after its pandas
    round trip is known (a float64 column stays float64 with NaN for null; a bool column with nulls
    becomes True/False/None; times stay times). Lists are Feast-converted from the same round trip."""
    if value_type == ValueType.DOUBLE:
        return pa.types.is_float64(kind)
    if value_type == ValueType.STRING:
        return _is_string(kind)
    if value_type == ValueType.BOOL:
        return pa.types.is_boolean(kind)
    if value_type == ValueType.UNIX_TIMESTAMP:
        return pa.types.is_timestamp(kind)
    return value_type in _FEAST_CONVERTED and (pa.types.is_list(kind) or pa.types.is_large_list(kind))


def _no_missing_items(column: pa.ChunkedArray) -> bool:
    """No null inside any list (Feast puts a default in their place: left to Feast's conversion)."""
    return all(chunk.flatten().null_count == 0 for chunk in column.chunks)


def _all_missing(column: pa.ChunkedArray) -> bool:
    """pandas' isnull over the whole column (null, NaN, NaT): Feast skips a batch whose features all are."""
    if pa.types.is_floating(column.type):
        return bool(pc.all(pc.is_null(column, nan_is_null=True)).as_py())
    return column.null_count == len(column)


def _doubles(column: pa.ChunkedArray) -> Values:
    """double_val: a tag byte and the little-endian double; NaN and null (NaN to Feast after pandas) are
    an empty Value (b"", no text); the text is Python's str of the float, as extract_text_and_num gives."""
    numbers = np.asarray(column.to_numpy(zero_copy_only=False), dtype="float64")
    packed = np.empty(len(numbers), dtype=_DOUBLE)
    packed["tag"] = _DOUBLE_TAG
    packed["value"] = numbers
    blobs: list[bytes] = packed.view("V9").tolist()
    floats = numbers.tolist()
    texts: list[str | None] = [str(x) for x in floats]
    for i in np.flatnonzero(np.isnan(numbers)).tolist():
        blobs[i], texts[i] = b"", None
    return blobs, texts


def _strings(column: pa.ChunkedArray) -> Values:
    """string_val: the tag, the UTF-8 length as a varint and the bytes (an empty string too); null is b"".
    The text is the string itself."""
    data = pc.cast(column.combine_chunks(), pa.large_binary())
    blobs: list[bytes] = pc.fill_null(_delimited(_STRING_TAG, data), b"").to_pylist()
    return blobs, column.to_pylist()


def _string_lists(column: pa.ChunkedArray) -> Values:
    """string_list_val (a StringList: each string as field 1, tag + length + bytes); an empty list is the
    empty message, a null list b"". No text."""
    lists = column.combine_chunks()
    items = _delimited(b"\x0a", pc.cast(lists.flatten(), pa.large_binary()))
    inner = pc.binary_join(_regrouped(lists, items), pa.scalar(b"", pa.large_binary()))
    return pc.fill_null(_delimited(_STRING_LIST_TAG, inner), b"").to_pylist(), [None] * len(lists)


def _int64_lists(column: pa.ChunkedArray) -> Values:
    """int64_list_val (an Int64List: its values packed, as proto3 repeats them: field 1, the length, the
    varints; nothing for an empty list); a null list b"". No text."""
    lists = column.combine_chunks()
    numbers = np.asarray(lists.flatten().to_numpy(zero_copy_only=False), dtype="int64")
    packed = pc.binary_join(_regrouped(lists, _binary(*_varints(numbers))), pa.scalar(b"", pa.large_binary()))
    empty = pc.equal(pc.binary_length(packed), 0)
    inner = pc.if_else(empty, pa.scalar(b"", pa.large_binary()), _delimited(b"\x0a", packed))
    return pc.fill_null(_delimited(_INT64_LIST_TAG, inner), b"").to_pylist(), [None] * len(lists)


def _regrouped(lists: pa.Array, items: pa.Array) -> pa.Array:
    """`items` (one per element of `lists`, flattened) grouped back into the same lists (nulls kept)."""
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype="int64")])
    return pa.LargeListArray.from_arrays(pa.array(offsets), items, mask=lists.is_null())


def _delimited(tag: bytes, payload: pa.Array) -> pa.Array:
    """Each payload as a length-delimited protobuf field: the tag, the byte length as a varint, the bytes."""
    lengths = pc.fill_null(pc.binary_length(payload), 0).to_numpy(zero_copy_only=False)
    heads = _binary(*_varints(np.asarray(lengths, dtype="int64")))
    return pc.binary_join_element_wise(pa.scalar(tag, pa.large_binary()), heads, payload, pa.scalar(b"", pa.large_binary()))


def _varints(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of int64 values (negative ones as their 64-bit two's complement, 10 bytes), as
    one byte string and each value's length in it."""
    unsigned = numbers.astype("int64").view("uint64")
    sizes = np.ones(len(unsigned), dtype="int64")
    for k in range(1, 10):
        sizes += unsigned >= np.uint64(1 << (7 * k))
    groups = np.empty((len(unsigned), 10), dtype="uint8")
    for k in range(10):
        more = (sizes > k + 1).astype("uint8") << 7
        groups[:, k] = ((unsigned >> np.uint64(7 * k)) & np.uint64(0x7F)).astype("uint8") | more
    return groups[np.arange(10) < sizes[:, None]], sizes


def _binary(data: np.ndarray, sizes: np.ndarray) -> pa.Array:
    """A binary array of consecutive pieces of `data`, `sizes` bytes each."""
    offsets = np.concatenate([[0], np.cumsum(sizes, dtype="int64")])
    return pa.Array.from_buffers(pa.large_binary(), len(sizes), [None, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())])


def _times(column: pa.ChunkedArray) -> Values:
    """unix_timestamp_val: Feast casts each numpy datetime64 to seconds (NaT becomes the int64 minimum,
    stored like any time); protobuf serializes each distinct value once. No text."""
    seconds = np.asarray(column.to_numpy(zero_copy_only=False)).astype("datetime64[s]").astype("int64")
    distinct, where = np.unique(seconds, return_inverse=True)
    serialized = [ValueProto(unix_timestamp_val=s).SerializeToString() for s in distinct.tolist()]
    return [serialized[i] for i in where.tolist()], [None] * len(seconds)


def _feast_converted(column: pa.ChunkedArray, kind: ValueType) -> Values:
    """Feast's own conversion of the column as Feast sees it (after its pandas round trip), serialized."""
    seen = pa.Table.from_pandas(pa.table({"c": column}).to_pandas()).column("c")
    protos = python_values_to_proto_values(seen.to_numpy(zero_copy_only=False), kind)
    return [v.SerializeToString() for v in protos], [extract_text_and_num(v, False)[0] for v in protos]

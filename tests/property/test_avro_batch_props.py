"""BatchRecordWriter writes, byte for byte, what fastavro writes for the same records."""
import io

import fastavro
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from models.taxonomy import CLASS_IDS
from stream import avro_io
from stream.avro_batch import BatchRecordWriter

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCHEMAS = ("alertformer.scored_alert", "elasticc.v0_9_1.brokerClassification", "alertformer.followup",
           "alertformer.label")
LONG_RANGE = {"int": (-2**31, 2**31 - 1), "long": (-2**63, 2**63 - 1)}
text = st.text(max_size=30)  # any code points, so multi-byte UTF-8 too
float32 = st.floats(width=32, allow_nan=False)


def _long_kind(kind) -> str | None:
    if isinstance(kind, dict):
        kind = kind.get("type")
    return kind if isinstance(kind, str) and kind in LONG_RANGE else None


def _column(draw, kind, n: int):
    """A column of `n` values of an Avro field type, as the writer takes it, and its per-record values."""
    if _long_kind(kind):
        low, high = LONG_RANGE[_long_kind(kind)]
        values = draw(st.lists(st.integers(low, high), min_size=n, max_size=n))
        return np.array(values, dtype=np.int64), values
    if isinstance(kind, list):  # ["null", long]
        return _column(draw, kind[1], n)
    if kind == "float":
        values = draw(st.lists(float32, min_size=n, max_size=n))
        return np.array(values, dtype=np.float32), values
    if kind == "double":
        values = draw(st.lists(st.floats(allow_nan=False), min_size=n, max_size=n))
        return np.array(values, dtype=np.float64), values
    if kind == "string":
        if draw(st.booleans()):  # one value for the whole batch
            value = draw(text)
            return value, [value] * n
        values = draw(st.lists(text, min_size=n, max_size=n))
        return values, values
    ids = np.array(CLASS_IDS, dtype=np.int64)
    probs = np.array(draw(st.lists(float32, min_size=n * len(ids), max_size=n * len(ids))),
                     dtype=np.float32).reshape(n, len(ids))
    return (ids, probs), [[{"classId": int(c), "probability": float(p)} for c, p in zip(ids, row)] for row in probs]


@st.composite
def batches(draw):
    """(schema name, columns, records) of 0-5 records."""
    name = draw(st.sampled_from(SCHEMAS[:2]))
    schema = avro_io.load_schema(name)
    n = draw(st.integers(0, 5))
    columns, records = {}, [{} for _ in range(n)]
    for field in schema["fields"]:
        columns[field["name"]], values = _column(draw, field["type"], n)
        for record, value in zip(records, values):
            record[field["name"]] = value
    return name, columns, records


def fastavro_bytes(name: str, record: dict, prefix: bytes) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, avro_io.load_schema(name), record)
    return prefix + buf.getvalue()


@FAST
@given(batches(), st.binary(max_size=12))
def test_batch_writer_agrees_with_fastavro(batch, prefix):
    name, columns, records = batch
    written = BatchRecordWriter(avro_io.load_schema(name), prefix).write(columns, len(records))
    assert written == [fastavro_bytes(name, r, prefix) for r in records]


def test_scalar_columns_broadcast_and_short_columns_are_refused():
    writer = BatchRecordWriter(avro_io.load_schema("elasticc.v0_9_1.brokerClassification"))
    probs = np.full((3, len(CLASS_IDS)), 0.5, dtype=np.float32)
    columns = {"alertId": 7, "diaSourceId": np.arange(3), "elasticcPublishTimestamp": 1, "brokerIngestTimestamp": 2,
               "brokerName": "a", "brokerVersion": "b", "classifierName": ["x", "y", "z"], "classifierParams": "{}",
               "classifications": (np.array(CLASS_IDS), probs)}
    decoded = [avro_io.decode_schemaless("elasticc.v0_9_1.brokerClassification", b)
               for b in writer.write(columns, 3)]
    assert [d["alertId"] for d in decoded] == [7, 7, 7]
    assert [d["diaSourceId"] for d in decoded] == [0, 1, 2]
    assert [d["classifierName"] for d in decoded] == ["x", "y", "z"]
    with pytest.raises(ValueError, match="2 values for 3 records"):
        writer.write(columns | {"classifierName": ["x", "y"]}, 3)
    with pytest.raises(ValueError, match=r"column 'diaSourceId': shape \(2,\) for 3 records"):
        writer.write(columns | {"diaSourceId": np.arange(2)}, 3)
    with pytest.raises(KeyError, match="brokerName"):
        writer.write({k: v for k, v in columns.items() if k != "brokerName"}, 3)


@pytest.mark.parametrize("name", SCHEMAS[2:])
def test_schemas_with_other_types_are_refused_naming_the_field(name):
    with pytest.raises(ValueError, match=r"field '\w+': type"):
        BatchRecordWriter(avro_io.load_schema(name))

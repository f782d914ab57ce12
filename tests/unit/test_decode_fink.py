"""Fink's ZTF topics: schemaless Avro with the writer schema (ZTF's plus Fink's fields) in the message key."""
import io
import json
from pathlib import Path
from types import SimpleNamespace

import fastavro

from stream import avro_io
from stream.decode import decode_ztf
from stream.ingest import Ingest

ZTF_PACKET = sorted((Path(__file__).resolve().parents[2] / "data" / "ztf" / "alerts").glob("*.avro"))[0]
FINK_FIELDS = [  # as Fink adds them after the ZTF fields
    {"name": "cdsxmatch", "type": "string", "default": "Unknown"},
    {"name": "rf_snia_vs_nonia", "type": "double", "default": 0.0},
    {"name": "snn_snia_vs_nonia", "type": ["null", "double"], "default": None},
    {"name": "mulens", "type": ["null", {"type": "record", "name": "mulens_t", "fields": [
        {"name": "class_1", "type": ["null", "string"], "default": None}]}], "default": None},
]


def fink_message(topic: str = "fink_early_sn_candidates_ztf"):
    container = ZTF_PACKET.read_bytes()
    reader = fastavro.reader(io.BytesIO(container))
    record = next(reader)
    schema = dict(reader.writer_schema, fields=reader.writer_schema["fields"] + FINK_FIELDS)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record | {
        "cdsxmatch": "SN", "rf_snia_vs_nonia": 0.8, "snn_snia_vs_nonia": 0.7, "mulens": {"class_1": "ML"}})
    key, value = json.dumps(schema).encode(), body.getvalue()
    message = SimpleNamespace(topic=lambda: topic, partition=lambda: 0, offset=lambda: 5, key=lambda: key,
                              value=lambda: value, timestamp=lambda: (1, 0), headers=lambda: None)
    return message, decode_ztf(container)


def test_fink_ztf_packet_with_extra_fields_decodes_as_the_ztf_packet():
    message, expected = fink_message()
    good, dead = Ingest({"fink_early_sn_candidates_ztf": "fink-ztf"}, "dead")([message])
    assert not dead
    alert = good[0].alert
    assert (alert.object_id, alert.alert_id, alert.schema) == (expected.object_id, expected.alert_id, expected.schema)
    assert alert.light_curve.flux_njy.tolist() == expected.light_curve.flux_njy.tolist()


def test_fink_packet_without_its_schema_key_is_a_dead_letter():
    message, _ = fink_message()
    message.key = lambda: b"ZTF21abc"
    good, dead = Ingest({"fink_early_sn_candidates_ztf": "fink-ztf"}, "dead")([message])
    assert not good and "the message key is not an Avro schema" in avro_io.decode(dead[0].value)[1]["reason"]

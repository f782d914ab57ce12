"""Scored-alert records: the top class by id and name; records of the previous schema still decode."""
import io
import json

import fastavro
import numpy as np

from models.context import LEGACY_CONTEXT_FIELDS_BY_SURVEY
from models.taxonomy import CLASS_IDS, CLASS_NAMES, N_CLASSES
from stream import avro_io
from stream.decode import decode_auto
from stream.alert import AlertBatch
from stream.ingest import IngestedBatch
from stream.publish import SCORED_SCHEMA, scored_batch, scored_outputs
from stream.score import Scores
from stream.subscribe import record_decoder
from stream.window import build_windows

PREVIOUS = avro_io.resources.files("stream.schemas") / avro_io.PREVIOUS_DIR


def test_scored_records_carry_the_top_class_by_id_and_name(shared_data):
    alert = decode_auto((shared_data / "ztf" / "alerts" / "472263571115115000.avro").read_bytes())
    items = IngestedBatch(AlertBatch.from_alerts([alert, alert]), [None, None], ["alerts"] * 2, np.zeros(2, np.int64),
                          np.array([7, 8]), np.full(2, 1_700_000_000_000))
    probs = np.full((2, N_CLASSES), 0.01, dtype=np.float32)
    probs[0, CLASS_IDS.index(2232)] = probs[1, CLASS_IDS.index(2233)] = 0.9  # KN, then M-dwarf Flare
    n = np.array([3, 3], dtype=np.int32)
    scores = Scores(probs, probs[:, 0], probs[:, 4], n, n, "v1", 1_700_000_000_500)
    batch = scored_batch(items, scores, build_windows(items.alerts, {}, LEGACY_CONTEXT_FIELDS_BY_SURVEY))
    outputs = scored_outputs(items, batch, 1_700_000_000_100, "scored", "classifications")
    records = [avro_io.decode(o.value) for o in outputs if o.topic == "scored"]
    assert [(name, r["topClassId"], r["topClass"]) for name, r in records] == [
        (SCORED_SCHEMA, 2232, "KN"), (SCORED_SCHEMA, 2233, "M-dwarf Flare")]


def without_docs(avro_type):
    """An Avro type without its ``doc`` strings, which do not change what is written."""
    if isinstance(avro_type, dict):
        return {k: without_docs(v) for k, v in avro_type.items() if k != "doc"}
    if isinstance(avro_type, list):
        return [without_docs(t) for t in avro_type]
    return avro_type


def test_every_previous_schema_only_lacks_fields_with_defaults():
    previous = [p for p in PREVIOUS.iterdir() if p.name.endswith(".avsc")]
    assert previous
    for path in previous:
        old = json.loads(path.read_text())
        current = json.loads((avro_io.resources.files("stream.schemas") / f"{old['namespace']}.{old['name']}.avsc")
                             .read_text())
        old_fields = {f["name"]: without_docs(f["type"]) for f in old["fields"]}
        assert {f["name"]: without_docs(f["type"]) for f in current["fields"] if f["name"] in old_fields} == old_fields
        assert all("default" in f for f in current["fields"] if f["name"] not in old_fields), path.name


def test_a_record_of_the_previous_scored_schema_decodes_into_the_current_one():
    writer = fastavro.parse_schema(json.loads((PREVIOUS / "alertformer.scored_alert.1.avsc").read_text()))
    record = {"alertId": 1, "sourceId": 1, "objectId": "o", "survey": "ztf", "topic": "alerts", "partition": 0,
              "offset": 9, "surveyPublishMs": 1, "ingestMs": 2, "scoredMs": 3, "publishedMs": 4, "modelVersion": "v0",
              "classProbabilities": [{"classId": c, "probability": 0.5 if c == 2224 else 0.05} for c in CLASS_IDS],
              "snLikelihood": 0.6, "flareLikelihood": 0.05, "nVisits": 2, "nDetections": 2, "raDeg": 1.0,
              "decDeg": 2.0, "latestMjdTai": 60000.0, "latestFluxNjy": 100.0, "latestBand": "ztf-g"}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, writer, record)
    fingerprint = int(fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(writer), "CRC-64-AVRO"),
                      16).to_bytes(8, "little")
    assert fingerprint != avro_io.schema_fingerprint(SCORED_SCHEMA)  # a different version
    payload = avro_io.SINGLE_OBJECT_MAGIC + fingerprint + body.getvalue()
    name, decoded = avro_io.decode(payload)
    assert name == SCORED_SCHEMA and (decoded["topClassId"], decoded["topClass"]) == (0, "")  # the defaults
    assert {k: decoded[k] for k in ("objectId", "offset", "latestBand")} == {"objectId": "o", "offset": 9,
                                                                           "latestBand": "ztf-g"}
    printed = record_decoder("scored")(payload)  # subscribe names the top class of old records too
    assert (printed["topClassId"], printed["topClass"]) == (2224, CLASS_NAMES[CLASS_IDS.index(2224)])

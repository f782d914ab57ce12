"""`alertformer subscribe` filters: parsing (with clear errors) and evaluation, without Kafka."""
import argparse
import io
from datetime import datetime, timezone

import fastavro
import pytest

from alertformer.cli.subscribe import add_parser
from models.taxonomy import CLASS_IDS
from stream import avro_io
from stream.errors import BadPacket, ConfigError
from stream.subscribe import SCHEMAS, Comparison, build_filter, parse_where, record_decoder


def encode_schemaless(name: str, record: dict) -> bytes:
    """Plain schemaless Avro, as the service writes ELAsTiCC brokerClassification records."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, avro_io.load_schema(name), record)
    return buf.getvalue()


def class_probs(top_id: int, top_p: float = 0.6) -> list[dict]:
    rest = (1 - top_p) / (len(CLASS_IDS) - 1)
    return [{"classId": c, "probability": top_p if c == top_id else rest} for c in CLASS_IDS]


SCORED = {
    "alertId": 170_000_000_000_000_123, "sourceId": 170_000_000_000_000_123, "objectId": "313853685698494466",
    "survey": "rubin", "topic": "alerts", "partition": 1, "offset": 42, "surveyPublishMs": 1_700_000_000_000,
    "ingestMs": 1_700_000_000_100, "scoredMs": 1_700_000_000_200, "publishedMs": 1_700_000_000_300,
    "modelVersion": "v1", "classProbabilities": class_probs(2222), "snLikelihood": 0.85, "flareLikelihood": 0.02,
    "nVisits": 4, "nDetections": 3, "raDeg": 359.9, "decDeg": -30.0, "latestMjdTai": 61000.5,
    "latestFluxNjy": 5000.0, "latestBand": "lsst-r",
}
FOLLOWUP = {
    "objectId": "ZTF21abcdefg", "alertId": 7, "rule": "flare", "raDeg": 150.0, "decDeg": 2.0, "snLikelihood": 0.0,
    "flareLikelihood": 0.95, "nVisits": 2, "latestMjdTai": 61000.5, "latestBand": "ztf-g", "latestFluxNjy": 0.0,
    "latestMagAb": None, "modelVersion": "v1", "createdMs": 1_700_000_000_000,
}
CLASSIFICATION = {
    "alertId": 9, "diaSourceId": 10, "elasticcPublishTimestamp": 1_700_000_000_000,
    "brokerIngestTimestamp": 1_700_000_000_500, "brokerName": "alertformer", "brokerVersion": "0.1.0",
    "classifierName": "alertformer-transformer v1", "classifierParams": "{}",
    "classifications": [{"classId": 2222, "probability": 0.3}, {"classId": 2233, "probability": 0.7}],
}


# (kind, --where texts, record, passes)
WHERE_CASES = [
    ("scored", ["sn_likelihood>0.8"], SCORED, True),
    ("scored", ["sn_likelihood>0.85"], SCORED, False),
    ("scored", ["sn_likelihood>=0.85"], SCORED, True),
    ("scored", ["snLikelihood >= 0.85"], SCORED, True),
    ("scored", ["flare_likelihood>=0.9"], SCORED, False),
    ("scored", ["n_visits>=3", "n_detections<3"], SCORED, False),
    ("scored", ["n_visits>=3", "n_detections<=3"], SCORED, True),
    ("scored", ["survey=rubin"], SCORED, True),
    ("scored", ["survey==ztf"], SCORED, False),
    ("scored", ["survey!=ztf"], SCORED, True),
    ("scored", ["latest_band = lsst-r"], SCORED, True),
    ("scored", ["alert_id=170000000000000123"], SCORED, True),  # beyond 2**53: compared as int
    ("scored", ["alert_id=170000000000000124"], SCORED, False),
    ("scored", ["object_id=313853685698494466"], SCORED, True),  # a string field compares as text
    ("followup", ["rule=flare", "flare_likelihood>0.9"], FOLLOWUP, True),
    ("followup", ["latest_mag_ab<25"], FOLLOWUP, False),  # null never passes
    ("followup", ["latest_mag_ab!=25"], FOLLOWUP, False),
    ("classifications", ["broker_name=alertformer", "dia_source_id=10"], CLASSIFICATION, True),
    ("classifications", ["elasticc_publish_timestamp>1700000000000"], CLASSIFICATION, False),
]


@pytest.mark.parametrize("kind, where, record, passes", WHERE_CASES)
def test_where(kind, where, record, passes):
    assert build_filter(kind, where)(record) is passes


def test_where_parses_aliases_and_numbers():
    assert parse_where("n_visits>=3", "scored") == Comparison("nVisits", ">=", 3)
    assert parse_where(" sn_likelihood  >  0.8 ", "scored") == Comparison("snLikelihood", ">", 0.8)
    assert parse_where("latest_flux_njy<-1e3", "scored") == Comparison("latestFluxNjy", "<", -1000.0)


# (kind, --where text, words the error must contain)
BAD_WHERE = [
    ("scored", "sn_likelihood", ["'sn_likelihood'", "FIELD OP VALUE"]),
    ("scored", "sn_likelihood>", ["'sn_likelihood>'", "FIELD OP VALUE"]),
    ("scored", ">0.8", ["'>0.8'"]),
    ("scored", "sn_likelihod>0.8", ["'sn_likelihod>0.8'", "no field 'sn_likelihod'", "snLikelihood"]),
    ("scored", "sn_likelihood>high", ["'sn_likelihood>high'", "snLikelihood is a number", "'high'"]),
    ("scored", "survey>ztf", ["'survey>ztf'", "= or !="]),
    ("scored", "class_probabilities>0.5", ["'class_probabilities>0.5'", "--class"]),
    ("followup", "survey=ztf", ["followup records have no field 'survey'"]),
    ("classifications", "sn_likelihood>0.8", ["classifications records have no field 'sn_likelihood'"]),
]


@pytest.mark.parametrize("kind, text, words", BAD_WHERE)
def test_bad_where_names_the_text(kind, text, words):
    with pytest.raises(ConfigError) as err:
        build_filter(kind, [text])
    for word in words:
        assert word in str(err.value)


# (kind, --class, --min-prob, record, passes)
CLASS_CASES = [
    ("scored", "2222", None, SCORED, True),
    ("scored", "Ia", None, SCORED, True),
    ("scored", "ia", None, SCORED, True),
    ("scored", "II", None, SCORED, False),
    ("scored", "m-dwarf flare", None, SCORED | {"classProbabilities": class_probs(2233, 0.4)}, True),
    ("scored", "M-dwarf Flare", None, SCORED | {"classProbabilities": []}, False),
    ("classifications", "2233", None, CLASSIFICATION, True),  # 0.7 > default 0.5
    ("classifications", "Ia", None, CLASSIFICATION, False),  # 0.3
    ("classifications", "Ia", 0.2, CLASSIFICATION, True),  # any class above --min-prob, not only the top
    ("classifications", "2233", 0.7, CLASSIFICATION, False),  # strictly above
]


@pytest.mark.parametrize("kind, class_text, min_prob, record, passes", CLASS_CASES)
def test_class(kind, class_text, min_prob, record, passes):
    assert build_filter(kind, class_text=class_text, min_prob=min_prob)(record) is passes


# (kind, cone, record position, passes)
CONE_CASES = [
    ("scored", "0.1,-30,0.5", (359.9, -30.0), True),  # across RA 0/360
    ("scored", "0.1,-30,0.1", (359.9, -30.0), False),
    ("followup", "150,2,1", (150.5, 2.5), True),
    ("followup", "150,2,0.5", (150.5, 2.5), False),
]


@pytest.mark.parametrize("kind, cone, position, passes", CONE_CASES)
def test_cone(kind, cone, position, passes):
    record = (SCORED if kind == "scored" else FOLLOWUP) | {"raDeg": position[0], "decDeg": position[1]}
    assert build_filter(kind, cone_text=cone)(record) is passes


def test_all_filters_combine():
    keep = build_filter("scored", ["sn_likelihood>0.8", "survey=rubin"], class_text="Ia", cone_text="0,-30,1")
    assert keep(SCORED)
    assert not keep(SCORED | {"survey": "ztf"})
    assert not keep(SCORED | {"classProbabilities": class_probs(2224)})
    assert not keep(SCORED | {"decDeg": -35.0})
    assert build_filter("scored")(SCORED)  # no filter keeps everything


# (kind, options, words the error must contain)
BAD_OPTIONS = [
    ("scored", {"class_text": "Iax"}, ["--class 'Iax'", "2222 Ia"]),
    ("scored", {"class_text": "9999"}, ["--class '9999'"]),
    ("followup", {"class_text": "Ia"}, ["--class", "followup records carry no class"]),
    ("scored", {"class_text": "Ia", "min_prob": 0.5}, ["--min-prob"]),
    ("classifications", {"min_prob": 0.5}, ["--min-prob"]),
    ("classifications", {"class_text": "Ia", "min_prob": 1.5}, ["--min-prob 1.5"]),
    ("classifications", {"cone_text": "1,2,3"}, ["--cone", "no position"]),
    ("scored", {"cone_text": "1,2"}, ["--cone '1,2'", "RA,DEC,RADIUS_DEG"]),
    ("scored", {"cone_text": "a,b,c"}, ["--cone 'a,b,c'"]),
    ("scored", {"cone_text": "400,0,1"}, ["--cone '400,0,1'", "ra_deg"]),
    ("scored", {"cone_text": "10,-95,1"}, ["--cone '10,-95,1'", "dec_deg"]),
    ("scored", {"cone_text": "10,0,0"}, ["--cone '10,0,0'", "radius_deg"]),
    ("alerts", {}, ["--kind 'alerts'"]),
]


@pytest.mark.parametrize("kind, options, words", BAD_OPTIONS)
def test_bad_options_name_the_option(kind, options, words):
    with pytest.raises(ConfigError) as err:
        build_filter(kind, **options)
    for word in words:
        assert word in str(err.value)


def test_decoders_read_each_kind_and_reject_the_wrong_one():
    assert record_decoder("scored")(avro_io.encode(SCHEMAS["scored"], SCORED))["alertId"] == SCORED["alertId"]
    followup = record_decoder("followup")(avro_io.encode(SCHEMAS["followup"], FOLLOWUP))
    assert followup.keys() == FOLLOWUP.keys() and followup["latestMagAb"] is None
    assert followup["flareLikelihood"] == pytest.approx(0.95)  # Avro float: float32 precision
    payload = encode_schemaless(SCHEMAS["classifications"], CLASSIFICATION)
    decoded = record_decoder("classifications")(payload)
    assert decoded["elasticcPublishTimestamp"] == CLASSIFICATION["elasticcPublishTimestamp"]  # ms, not datetime
    assert decoded["classifications"][1]["classId"] == 2233
    with pytest.raises(BadPacket, match="alertformer.followup record, not alertformer.scored_alert"):
        record_decoder("scored")(avro_io.encode(SCHEMAS["followup"], FOLLOWUP))
    with pytest.raises(BadPacket):
        record_decoder("followup")(payload)  # schemaless: no single-object magic


def test_classification_timestamps_accept_datetimes():
    record = CLASSIFICATION | {"elasticcPublishTimestamp": datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)}
    payload = encode_schemaless(SCHEMAS["classifications"], record)
    assert record_decoder("classifications")(payload)["elasticcPublishTimestamp"] == 1_700_000_000_000


def test_cli_options_parse():
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["subscribe", "--kind", "classifications", "--where", "alert_id>1", "--where",
                              "broker_name=alertformer", "--class", "Ia", "--min-prob", "0.2", "--from-beginning",
                              "--max", "5", "--idle-timeout-s", "3"])
    assert (args.kind, args.where, args.class_text, args.min_prob) == (
        "classifications", ["alert_id>1", "broker_name=alertformer"], "Ia", 0.2)
    assert (args.offset_reset, args.max, args.idle_timeout_s) == ("earliest", 5, 3.0)
    assert parser.parse_args(["subscribe"]).offset_reset == "latest"
    with pytest.raises(SystemExit):
        parser.parse_args(["subscribe", "--from-beginning", "--latest"])


def test_dead_letter_records_print_with_the_original_bytes_in_base64():
    import base64
    import json

    from stream import avro_io
    from stream.subscribe import build_filter, record_decoder

    record = {"payload": b"\x00bad", "key": None, "topic": "alerts", "partition": 1, "offset": 7,
              "kafkaTimestampMs": 1, "reason": "truncated", "errorType": "BadPacket", "deadLetteredAtMs": 2,
              "alertformerVersion": "0.1.0"}
    decoded = record_decoder("deadletter")(avro_io.encode("alertformer.deadletter", record))
    assert base64.b64decode(decoded["payload"]) == b"\x00bad" and decoded["reason"] == "truncated"
    assert build_filter("deadletter", ["offset>=7"])(decoded)
    json.dumps(decoded)


def test_printed_records_name_each_class_and_the_top_class():
    scored = record_decoder("scored")(avro_io.encode(SCHEMAS["scored"], SCORED | {"classProbabilities": class_probs(2232)}))
    names = {c["classId"]: c["className"] for c in scored["classProbabilities"]}
    assert names[2222] == "Ia" and names[2232] == "KN" and names[2233] == "M-dwarf Flare" and len(names) == len(CLASS_IDS)
    assert (scored["topClassId"], scored["topClass"]) == (2232, "KN")
    assert build_filter("scored", class_text="kilonova")(scored)
    payload = encode_schemaless(SCHEMAS["classifications"], CLASSIFICATION | {
        "classifications": [{"classId": 2233, "probability": 0.7}, {"classId": 300, "probability": 0.3}]})
    classified = record_decoder("classifications")(payload)
    assert [(c["classId"], c["className"]) for c in classified["classifications"]] == [
        (2233, "M-dwarf Flare"), (300, "NotClassified")]
    assert "topClass" not in classified


@pytest.mark.parametrize("spelling", ["Ia", "SN Ia", "SNIa", "2222"])
def test_class_accepts_every_spelling(spelling):
    assert build_filter("scored", class_text=spelling)(SCORED)

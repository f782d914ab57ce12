"""FastRubinDecoder against decode_rubin (fastavro): the same alerts, field for field, or the same BadPacket.

Real alerts: the 25 LSSTCam alerts of ``data/rubin`` re-encoded (schema
10.0). Simulated: one full alert per schema version (`bench.decode.full_record`).
"""
import io
import re
from pathlib import Path

import fastavro
import numpy as np
import pytest

from models.context import CONTEXT_INDEX
from bench.decode import filled_value, full_record
from stream.decode import decode_rubin, encode_rubin, rubin_records_from_parquet, rubin_schema, rubin_versions
from stream.decode.fast import FastRubinDecoder, RubinBatch, Unsupported, compile_plan
from stream.decode.fast import plan as plans
from stream.decode.fast import rubin as fast_rubin
from stream.errors import BadPacket, ConfigError

DATA = Path(__file__).resolve().parents[2] / "data"
PARQUET = DATA / "rubin" / "lsstcam_alerts_v10_sample.parquet"
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


@pytest.fixture(scope="module")
def decoder() -> FastRubinDecoder:
    return FastRubinDecoder()


@pytest.fixture(scope="module")
def records() -> list[dict]:
    records, version = rubin_records_from_parquet(PARQUET)
    assert version == "10.0"
    return records


@pytest.fixture(scope="module")
def payloads(records) -> list[bytes]:
    return [encode_rubin(record, "10.0") for record in records]


def assert_same_alert(got, expected) -> None:
    """Every DecodedAlert field equal, the light-curve columns equal in value and dtype."""
    assert (got.survey, got.schema, got.alert_id, got.source_id, got.object_id, got.ra_deg, got.dec_deg) == (
        expected.survey, expected.schema, expected.alert_id, expected.source_id, expected.object_id,
        expected.ra_deg, expected.dec_deg)
    assert got.dropped_points == expected.dropped_points
    assert type(got.alert_id) is int and type(got.ra_deg) is float
    for field in expected.light_curve.FIELDS:
        a, b = getattr(got.light_curve, field), getattr(expected.light_curve, field)
        assert a.dtype == b.dtype, field
        np.testing.assert_array_equal(a, b, err_msg=field)
    np.testing.assert_array_equal(got.context, expected.context, err_msg="context")


def same_reason(a: Exception, b: Exception) -> bool:
    """Equal BadPacket texts, but for object addresses: fastavro's EOFError names its BytesIO ``at 0x...``."""
    return type(a) is type(b) is BadPacket and _ADDRESS.sub("", str(a)) == _ADDRESS.sub("", str(b))


def assert_agrees(batch: RubinBatch, payloads: list[bytes], *, version: str | None = None) -> None:
    """Message by message, the batch says what decode_rubin says."""
    assert len(batch) == len(payloads) and batch.curves.offsets[0] == 0
    assert np.all(np.diff(batch.curves.offsets) >= 0) and batch.curves.offsets[-1] == len(batch.curves.mjd_tai)
    listed = batch.alerts()
    for i, payload in enumerate(payloads):
        try:
            expected = decode_rubin(payload, version=version)
        except BadPacket as err:
            assert not batch.ok[i] and same_reason(batch.errors[i], err)
            assert batch.curves.offsets[i] == batch.curves.offsets[i + 1]
            with pytest.raises(BadPacket):
                batch.alert(i)
            assert listed[i] is None
        else:
            assert batch.ok[i] and i not in batch.errors
            assert_same_alert(batch.alert(i), expected)
            assert_same_alert(listed[i], expected)


def test_real_alerts_agree_with_fastavro(decoder, payloads):
    batch, errors = decoder.decode_batch(payloads)
    assert errors == {} and not batch.fallback.any()  # all on the fast path
    assert_agrees(batch, payloads)
    assert int(np.diff(batch.curves.offsets).sum()) == 65
    assert [a.alert_id for a in batch.alerts()] == [decode_rubin(p).alert_id for p in payloads]


def test_real_alerts_carry_reliability_and_the_dia_objects_history_as_context(decoder, records, payloads):
    batch, _ = decoder.decode_batch(payloads)
    column = {name: batch.context[:, CONTEXT_INDEX[name]] for name in
              ("real_bogus", "n_detections_history", "first_detection_mjd_tai", "ss_distance_arcsec")}
    reliability = np.array([r["diaSource"]["reliability"] for r in records], dtype=np.float32)
    np.testing.assert_array_equal(column["real_bogus"], reliability)  # a float in the schema
    has_object = np.array([bool(r.get("diaObject")) for r in records])
    assert 0 < has_object.sum() < len(records)  # the sample has both
    counts = [r["diaObject"]["nDiaSources"] if r.get("diaObject") else np.nan for r in records]
    np.testing.assert_array_equal(column["n_detections_history"], counts)
    assert np.isnan(column["first_detection_mjd_tai"]).all()  # null in every alert of this sample
    np.testing.assert_array_equal(column["ss_distance_arcsec"] == 0, batch.object_is_ss)
    for i, p in enumerate(payloads):  # and the same from fastavro
        np.testing.assert_array_equal(decode_rubin(p).context, batch.context[i])


def test_solar_system_alerts_take_the_ss_object_id(decoder, records, payloads):
    batch, _ = decoder.decode_batch(payloads)
    sso = [i for i, r in enumerate(records) if r["diaSource"]["diaObjectId"] == 0]
    assert len(sso) == 3
    assert all(batch.object_id[i] == records[i]["diaSource"]["ssObjectId"] for i in sso)
    assert batch.object_is_ss.tolist() == [i in sso for i in range(len(records))]
    alerts = batch.alerts()
    assert all(alerts[i].object_id == batch.alert(i).object_id == f"ss{records[i]['diaSource']['ssObjectId']}"
               for i in sso)


def test_schemaless_payloads_with_a_configured_version(records):
    schemaless = [encode_rubin(r, "10.0", wire_format=False) for r in records]
    batch, errors = FastRubinDecoder(version="10.0").decode_batch(schemaless)
    assert errors == {} and not batch.fallback.any()
    assert_agrees(batch, schemaless, version="10.0")


@pytest.mark.parametrize("version", rubin_versions())
def test_every_version_has_a_plan_and_agrees(decoder, version):
    assert version in decoder.plans
    rng = np.random.default_rng(7)
    payloads = [encode_rubin(full_record(version, n_prv, n_forced, rng), version)
                for n_prv, n_forced in ((0, 0), (3, 0), (5, 9))]
    batch, errors = decoder.decode_batch(payloads)
    assert errors == {} and not batch.fallback.any()
    assert_agrees(batch, payloads)


def test_repeated_sources_and_forced_points_on_detection_visits(decoder, records):
    record = next(r for r in records if len(r["prvDiaSources"] or []) == 16)
    prv = record["prvDiaSources"]
    source = record["diaSource"]
    forced = [{"diaForcedSourceId": 10**15 + k, "visit": p["visit"] if k % 2 else 10**9 + k,
               "midpointMjdTai": p["midpointMjdTai"] + 0.5, "band": p["band"],
               "psfFlux": float("nan") if k % 2 else 12.5, "psfFluxErr": 1.5, "diaObjectId": source["diaObjectId"]}
              for k, p in enumerate(prv[:6])]  # odd k: a detection's visit (dropped, its NaN unchecked)
    repeated = {**record, "prvDiaSources": prv + prv[-1:] + [source], "prvDiaForcedSources": forced}
    payload = encode_rubin(repeated, "10.0", fill_defaults=True)
    batch, errors = decoder.decode_batch([payload])
    assert errors == {} and batch.fallback[0] == 0
    assert_agrees(batch, [payload])
    assert len(batch.light_curve(0)) == 17 + 3


@pytest.mark.parametrize("field, value", [
    ("psfFlux", float("nan")), ("psfFluxErr", 0.0), ("psfFluxErr", -1.0), ("midpointMjdTai", float("inf")),
    ("band", "q"), ("band", None), ("psfFlux", None), ("diaObjectId", None),
])
def test_bad_points_give_decode_rubins_bad_packet(decoder, records, field, value):
    record = records[14]
    source = {**record["diaSource"], field: value}
    if field == "diaObjectId":
        source["ssObjectId"] = None
    prv = [dict(p) for p in record["prvDiaSources"]]
    prv[3] = {**prv[3], field: value}
    payloads = [encode_rubin({**record, "diaSource": source}, "10.0", fill_defaults=True),
                encode_rubin({**record, "prvDiaSources": prv}, "10.0", fill_defaults=True)]
    batch, errors = decoder.decode_batch(payloads)
    assert_agrees(batch, payloads)
    assert 0 in errors and batch.fallback[0] != 0


@pytest.mark.parametrize("payload", [b"", None, b"\x00\x00", b"\x01\x00\x00\x03\xe8\x00",
                                     b"\x00\x00\x00\x10\x92\x00", b"\x00\x00\x00\x03\xe8"])
def test_bad_headers_and_empty_messages(decoder, payload):
    batch, errors = decoder.decode_batch([payload])
    assert not batch.ok[0]
    with pytest.raises(BadPacket) as expected:
        decode_rubin(payload or b"")
    assert str(errors[0]) == str(expected.value)


def test_truncated_and_trailing_bytes(decoder, payloads):
    payload = payloads[14]
    cut = [payload[:n] for n in (6, 100, len(payload) // 2, len(payload) - 10, len(payload) - 1)]
    batch, errors = decoder.decode_batch(cut + [payload + b"\x00"])
    assert_agrees(batch, cut + [payload + b"\x00"])
    assert batch.fallback.all()


def test_a_mixed_batch_keeps_message_order(decoder, payloads):
    only_10 = FastRubinDecoder(["10.0"])
    v11 = encode_rubin(full_record("11.1", 3, 2, np.random.default_rng(2)), "11.1")  # no plan: via fastavro
    mixed = [payloads[14], b"junk", v11, payloads[0], None, payloads[21][:-10], payloads[21]]
    batch, errors = only_10.decode_batch(mixed)
    assert sorted(errors) == [1, 4, 5]
    assert batch.ok.tolist() == [True, False, True, True, False, False, True]
    assert batch.fallback[2] == plans.BAD_HEADER and batch.fallback[[0, 3, 6]].tolist() == [0, 0, 0]
    assert_agrees(batch, [p or b"" for p in mixed])
    assert [a is None for a in batch.alerts()] == [False, True, False, False, True, True, False]
    assert batch.schema_names[batch.schema_index[2]] == "lsst.v11_1.alert"


def test_output_grows_when_the_first_guess_is_short(monkeypatch):
    monkeypatch.setattr(fast_rubin, "POINTS_PER_MESSAGE_GUESS", 1)
    decoder = FastRubinDecoder(["11.1"])
    rng = np.random.default_rng(3)
    payloads = [encode_rubin(full_record("11.1", 30, 20, rng), "11.1") for _ in range(5)]
    batch, errors = decoder.decode_batch(payloads)
    assert errors == {} and len(batch.curves.mjd_tai) == 5 * 51
    assert_agrees(batch, payloads)
    assert decoder._points_guess > 51  # the next batch is sized from this one


def test_versions_without_a_plan_go_to_fastavro(records, payloads):
    only_11 = FastRubinDecoder(["11.1"])
    batch, errors = only_11.decode_batch(payloads[:3])
    assert errors == {} and batch.fallback.tolist() == [plans.BAD_HEADER] * 3
    assert_agrees(batch, payloads[:3])
    assert batch.schema_names[batch.schema_index[0]] == "lsst.v10_0.alert"


def test_a_schema_the_compiler_refuses_is_left_to_fastavro(monkeypatch, payloads):
    real = fast_rubin.compile_plan

    def refusing(schema):
        if schema["name"] == "lsst.v10_0.alert":
            raise Unsupported("pretend")
        return real(schema)

    monkeypatch.setattr(fast_rubin, "compile_plan", refusing)
    decoder = FastRubinDecoder(["10.0", "11.1"])
    assert list(decoder.plans) == ["11.1"]
    batch, errors = decoder.decode_batch(payloads[:2])
    assert errors == {} and batch.fallback.tolist() == [plans.BAD_HEADER] * 2
    assert_agrees(batch, payloads[:2])
    schemaless = FastRubinDecoder(version="10.0")  # a schemaless version without a plan
    assert schemaless.fixed_entry == -1
    batch, errors = schemaless.decode_batch([p[5:] for p in payloads[:2]])
    assert errors == {} and batch.fallback.tolist() == [plans.BAD_HEADER] * 2


def test_unknown_version_is_a_config_error():
    with pytest.raises(ConfigError):
        FastRubinDecoder(["6.0"])
    with pytest.raises(ConfigError):
        FastRubinDecoder(version="99.1")


@pytest.mark.parametrize("schema, reason", [
    ({"type": "record", "name": "node", "fields": [{"name": "next", "type": ["null", "node"]}]}, "recursive"),
    ({"type": "record", "name": "a", "fields": [{"name": "x", "type": {"type": "array", "items": "null"}}]},
     "zero bytes"),
    ({"type": "record", "name": "a", "fields": [{"name": "d", "type": {"type": "int", "logicalType": "date"}}]},
     "int-date"),
])
def test_compiler_refuses_what_it_does_not_handle(schema, reason):
    compiler = plans._Compiler({"node": schema})
    with pytest.raises(Unsupported, match=reason):
        compiler.skip(fastavro.parse_schema(schema) if schema["name"] != "node" else schema)


def test_compiler_refuses_alerts_without_the_photometry_fields():
    schema = fastavro.parse_schema({"type": "record", "name": "x.alert", "fields": [
        {"name": "diaSourceId", "type": "long"}]})
    with pytest.raises(Unsupported, match="no diaSource"):
        compile_plan(schema)


def test_plans_merge_runs_of_plain_fields():
    plan = compile_plan(rubin_schema("11.1"))
    ops = plan.program[:, 0]
    assert (ops == plans.OP_FIELDS).sum() < 30 and len(plan.program) < 100  # ~100 fields a diaSource
    assert plan.max_depth == 1 and plan.min_point_bytes > 10


def zigzag(n: int) -> bytes:
    """`n` as an Avro long."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, "long", n)
    return buffer.getvalue()


def _blocked(record: dict, version: str) -> bytes:
    """`record` encoded with prvDiaSources written as two blocks of negative count (count, byte size, items)."""
    prv = record["prvDiaSources"]
    assert len(prv) >= 2
    empty = encode_rubin({**record, "prvDiaSources": []}, version)
    full = encode_rubin(record, version)
    first = encode_rubin({**record, "prvDiaSources": prv[:1]}, version)
    prefix = next(i for i in range(len(empty)) if empty[i] != full[i])  # where the count starts
    suffix = empty[prefix + 1:]

    items = full[prefix + len(zigzag(len(prv))):len(full) - len(suffix) - 1]
    one = first[prefix + len(zigzag(1)):len(first) - len(suffix) - 1]
    rest = items[len(one):]
    return (full[:prefix] + zigzag(-1) + zigzag(len(one)) + one
            + zigzag(-(len(prv) - 1)) + zigzag(len(rest)) + rest + b"\x00" + suffix)


def test_arrays_in_blocks_with_negative_counts(decoder):
    record = full_record("10.0", 4, 2, np.random.default_rng(11))
    payload = _blocked(record, "10.0")
    assert payload != encode_rubin(record, "10.0")
    batch, errors = decoder.decode_batch([payload])
    assert errors == {} and batch.fallback[0] == 0
    assert_agrees(batch, [payload])
    assert_same_alert(batch.alert(0), decode_rubin(encode_rubin(record, "10.0")))


def test_timestamps_outside_datetimes_range_go_to_fastavro(decoder):
    rng = np.random.default_rng(5)
    record = full_record("10.0", 1, 1, rng)
    orbit_fields = rubin_schema("10.0")["__named_schemas"]["lsst.v10_0.mpc_orbits"]["fields"]
    stamp = next(f["name"] for f in orbit_fields if "timestamp" in str(f["type"]))
    named = rubin_schema("10.0")["__named_schemas"]
    good = {**record, "mpc_orbits": filled_value(named["lsst.v10_0.mpc_orbits"], named, rng)}
    payloads = [encode_rubin(good, "10.0")]
    for value in (plans.TIMESTAMP_RANGE["long-timestamp-micros"][1] + 1, -2**62):
        payloads.append(encode_rubin({**good, "mpc_orbits": {**good["mpc_orbits"], stamp: value}}, "10.0"))
    batch, errors = decoder.decode_batch(payloads)
    assert batch.fallback.tolist() == [0, plans.BAD_TIMESTAMP, plans.BAD_TIMESTAMP]
    assert sorted(errors) == [1, 2]
    assert_agrees(batch, payloads)


def test_jit_time_is_measured(decoder):
    assert decoder.jit_s > 0


def test_a_negative_union_index_goes_to_fastavro(decoder, records, payloads):
    # fastavro indexes the branch list with it (-1: the last branch); the fast path leaves such bytes to it
    payload = payloads[0]
    at = 5 + len(zigzag(records[0]["diaSourceId"]))  # observation_reason: ["null", "string"]
    assert payload[at] == 2  # branch 1 (zig-zag 2)
    negative = payload[:at] + b"\x01" + payload[at + 1:]
    batch, _ = decoder.decode_batch([negative])
    assert batch.fallback[0] == plans.BAD_INDEX
    assert_agrees(batch, [negative])


@pytest.mark.parametrize("field, value", [
    ("midpointMjdTai", -1e300), ("midpointMjdTai", 99999.0), ("psfFlux", 1e30), ("psfFluxErr", 1e20),
])
def test_implausible_points_agree_with_decode_rubin(decoder, records, field, value):
    """An implausible history point is dropped and counted, an implausible alert is a BadPacket: by both paths."""
    record = records[14]
    prv = [dict(p) for p in record["prvDiaSources"]]
    prv[3] = {**prv[3], field: value}
    payloads = [encode_rubin({**record, "diaSource": {**record["diaSource"], field: value}}, "10.0", fill_defaults=True),
                encode_rubin({**record, "prvDiaSources": prv}, "10.0", fill_defaults=True),
                encode_rubin(record, "10.0", fill_defaults=True)]
    batch, errors = decoder.decode_batch(payloads)
    assert_agrees(batch, payloads)
    assert "outside" in str(errors[0]) or "beyond" in str(errors[0])
    assert batch.ok[1] and batch.dropped_points.tolist() == [0, 1, 0]
    assert len(batch.light_curve(1)) == len(batch.light_curve(2)) - 1
    assert batch.fallback.tolist() == [plans.IMPLAUSIBLE, 0, 0]  # a bad history point stays on the fast path


@pytest.mark.parametrize("field, value", [("ra", 720.0), ("ra", 360.0), ("dec", 200.0), ("dec", -1e300)])
def test_positions_off_the_sky_agree_with_decode_rubin(decoder, records, field, value):
    record = records[3]
    payload = encode_rubin({**record, "diaSource": {**record["diaSource"], field: value}}, "10.0", fill_defaults=True)
    batch, errors = decoder.decode_batch([payload])
    assert_agrees(batch, [payload])
    assert str(errors[0]).startswith(f"diaSource.{field} is ")

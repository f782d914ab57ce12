"""FastZtfDecoder against decode_ztf (fastavro and astropy): the same alerts, field for field, or the same BadPacket.

Real packets: the 1,698 labelled ZTF alerts of ``data/labeled/ztf_packets`` (schema 3.3 and 4.02, as the
evaluation re-encodes them) and the two packets of ``data/ztf/alerts`` (schema 3.2 and 3.3, with cutouts,
as ZTF wrote them).
"""
import io
import math
import re
from pathlib import Path

import fastavro
import numpy as np
import pytest
from fakes import FakeMessage

from stream import avro_io
from stream.decode import decode_ztf
from stream.decode.fast import ztf as fast_ztf
from stream.decode.fast import ztf_kernel
from stream.decode.fast.plan import BAD_NULL, BAD_VALUE, IMPLAUSIBLE, Unsupported
from stream.decode.fast.ztf import FastZtfDecoder, ZtfBatch
from stream.errors import BadPacket
from stream.ingest import Ingest
from training.real_packets import ztf_packets

ALERTS = Path(__file__).resolve().parents[2] / "data" / "ztf" / "alerts"
ZTF17AAACXXF = ALERTS / "2019_01_10_739260766315010006.avro"  # schema 3.2, 28 prv_candidates
ZTF17AAAJNNN = ALERTS / "472263571115115000.avro"  # schema 3.3, 11 prv_candidates
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


@pytest.fixture(scope="module")
def decoder() -> FastZtfDecoder:
    return FastZtfDecoder()


@pytest.fixture(scope="module")
def labelled() -> list[bytes]:
    return ztf_packets().payload


def read(path: Path) -> tuple[dict, dict]:
    """(writer schema, alert record) of a packet."""
    with path.open("rb") as fh:
        reader = fastavro.reader(fh)
        (alert,) = list(reader)
        return reader.writer_schema, alert


def packet(schema: dict, *alerts: dict, codec: str = "null") -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, list(alerts), codec=codec)
    return buffer.getvalue()


def with_candidate(path: Path, **fields) -> bytes:
    schema, raw = read(path)
    return packet(schema, {**raw, "candidate": {**raw["candidate"], **fields}})


def with_previous(path: Path, k: int, **fields) -> bytes:
    schema, raw = read(path)
    previous = [dict(p) for p in raw["prv_candidates"]]
    previous[k].update(fields)
    return packet(schema, {**raw, "prv_candidates": previous})


def assert_same_alert(got, expected) -> None:
    """Every DecodedAlert field equal (MJD TAI to the bit), the light-curve columns equal in value and dtype."""
    assert (got.survey, got.schema, got.alert_id, got.source_id, got.object_id, got.ra_deg, got.dec_deg,
            got.dropped_points) == (expected.survey, expected.schema, expected.alert_id, expected.source_id,
                                    expected.object_id, expected.ra_deg, expected.dec_deg, expected.dropped_points)
    assert type(got.alert_id) is int and type(got.ra_deg) is float and type(got.object_id) is str
    for name in expected.light_curve.FIELDS:
        a, b = getattr(got.light_curve, name), getattr(expected.light_curve, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(got.context, expected.context, err_msg="context")


def assert_agrees(batch: ZtfBatch, payloads: list[bytes]) -> None:
    """Message by message, the batch says what decode_ztf says."""
    assert len(batch) == len(payloads) and batch.curves.offsets[0] == 0 and batch.curves.offsets[-1] == len(batch.curves.mjd_tai)
    listed = batch.alerts()
    for i, payload in enumerate(payloads):
        try:
            expected = decode_ztf(payload)
        except BadPacket as err:
            assert not batch.ok[i] and listed[i] is None
            assert type(batch.errors[i]) is BadPacket
            assert _ADDRESS.sub("", str(batch.errors[i])) == _ADDRESS.sub("", str(err))
            assert batch.curves.offsets[i] == batch.curves.offsets[i + 1]
            with pytest.raises(BadPacket):
                batch.alert(i)
        else:
            assert batch.ok[i] and i not in batch.errors
            assert_same_alert(batch.alert(i), expected)
            assert_same_alert(listed[i], expected)


def test_every_labelled_packet_agrees_on_the_fast_path(decoder, labelled):
    batch, errors = decoder.decode_batch(labelled)
    assert errors == {} and not batch.fallback.any()
    assert_agrees(batch, labelled)
    assert {batch.schema_names[i] for i in batch.schema_index} == {"ztf 3.3", "ztf 4.02"}
    points = batch.curves
    assert (~points.is_detection).sum() > 10_000 and (points.flux_njy < 0).any()  # upper limits, negative fluxes


def test_ztfs_own_packets_agree_on_the_fast_path(decoder):
    payloads = [ZTF17AAACXXF.read_bytes(), ZTF17AAAJNNN.read_bytes()]
    batch, errors = decoder.decode_batch(payloads)
    assert errors == {} and not batch.fallback.any()
    assert_agrees(batch, payloads)
    assert [batch.schema_names[i] for i in batch.schema_index] == ["ztf 3.2", "ztf 3.3"]
    assert np.diff(batch.curves.offsets).tolist() == [29, 12]
    assert len(decoder.plans) >= 2  # each writer schema text compiled once


def test_contexts_with_none_nearby_and_missing_fields(decoder):
    payloads = [with_candidate(ZTF17AAAJNNN, sgscore1=-999.0, distpsnr1=-999.0, ssdistnr=-999.0, neargaia=None,
                               magnr=-999.0, drb=None, rb=0.75, jdstarthist=None),
                with_candidate(ZTF17AAAJNNN, jdstarthist=1.0, drb=0.25)]
    batch, errors = decoder.decode_batch(payloads)
    assert errors == {} and not batch.fallback.any()
    assert_agrees(batch, payloads)


def test_repeated_candids_and_upper_limits_keep_the_first(decoder):
    schema, raw = read(ZTF17AAACXXF)
    previous = raw["prv_candidates"]
    detection = next(p for p in previous if p["magpsf"] is not None)
    limit = next(p for p in previous if p["magpsf"] is None)
    repeated = previous + [dict(detection, magpsf=12.0), dict(limit, diffmaglim=21.5),
                           dict(detection, candid=raw["candid"])]
    payload = packet(schema, {**raw, "prv_candidates": repeated})
    batch, errors = decoder.decode_batch([payload])
    assert errors == {} and batch.fallback[0] == 0
    assert_agrees(batch, [payload])
    assert len(batch.light_curve(0)) == 29


@pytest.mark.parametrize("field, value", [
    ("magpsf", math.nan), ("magpsf", -1000.0), ("magpsf", 1000.0), ("sigmapsf", 0.0), ("sigmapsf", -1.0),
    ("isdiffpos", "x"), ("isdiffpos", "tt"), ("fid", 4), ("fid", 0), ("jd", math.inf), ("jd", 1.0),
    ("ra", math.nan), ("ra", 720.0), ("dec", -91.0), ("magpsf", -40.0),
])
def test_bad_candidates_give_decode_ztfs_bad_packet(decoder, field, value):
    payload = with_candidate(ZTF17AAAJNNN, **{field: value})
    batch, errors = decoder.decode_batch([payload])
    assert_agrees(batch, [payload])
    assert 0 in errors and batch.fallback[0] != 0


@pytest.mark.parametrize("k, field, value, fast", [
    (1, "magpsf", math.inf, False), (1, "sigmapsf", None, False), (1, "candid", None, False),
    (1, "isdiffpos", None, False), (1, "diffmaglim", None, True),  # a detection needs no limit
    (0, "diffmaglim", None, False), (0, "diffmaglim", math.nan, False), (0, "fid", 7, False),
    (0, "candid", None, True), (0, "isdiffpos", "?", True), (0, "sigmapsf", -3.0, True),  # a limit needs none
    (0, "diffmaglim", -1000.0, False),  # its error overflows float32
    (1, "magpsf", -40.0, True), (0, "jd", 2488069.0, True),  # implausible history: dropped by both
])
def test_previous_candidates_agree(decoder, k, field, value, fast):
    schema, raw = read(ZTF17AAACXXF)
    detections = [i for i, p in enumerate(raw["prv_candidates"]) if p["magpsf"] is not None]
    limits = [i for i, p in enumerate(raw["prv_candidates"]) if p["magpsf"] is None]
    payload = with_previous(ZTF17AAACXXF, (limits if k == 0 else detections)[2], **{field: value})
    batch, errors = decoder.decode_batch([payload])
    assert_agrees(batch, [payload])
    assert (batch.fallback[0] == 0) == fast


def test_implausible_points(decoder):
    payloads = [with_previous(ZTF17AAACXXF, 4, magpsf=-40.0), with_candidate(ZTF17AAACXXF, magpsf=-40.0)]
    batch, errors = decoder.decode_batch(payloads)
    assert_agrees(batch, payloads)
    assert batch.dropped_points.tolist() == [1, 0] and batch.fallback.tolist() == [0, IMPLAUSIBLE]
    assert "beyond" in str(errors[1])


@pytest.mark.parametrize("payload", [b"", None, b"Obj", b"Obj\x01", b"\x00\x00\x00\x03\xe8", b"Obj\x01\x02\x00"])
def test_bad_headers_and_empty_messages(decoder, payload):
    batch, errors = decoder.decode_batch([payload])
    assert not batch.ok[0]
    with pytest.raises(BadPacket) as expected:
        decode_ztf(payload or b"")
    assert str(errors[0]) == str(expected.value)


def test_truncated_trailing_and_doubled_containers(decoder):
    payload = ZTF17AAAJNNN.read_bytes()
    schema, raw = read(ZTF17AAAJNNN)
    cut = [payload[:n] for n in (5, 100, 3000, len(payload) // 2, len(payload) - 17, len(payload) - 1)]
    odd = [payload + b"\x00", packet(schema, raw, raw), packet(schema, raw, codec="deflate")]
    batch, errors = decoder.decode_batch(cut + odd)
    assert_agrees(batch, cut + odd)
    assert batch.fallback.all() and set(batch.fallback[-3:].tolist()) == {ztf_kernel.BAD_CONTAINER}
    assert batch.ok[-1]  # fastavro reads the deflated one


def test_unknown_versions_go_to_decode_ztf(decoder):
    schema, raw = read(ZTF17AAAJNNN)
    payloads = [packet(schema, {**raw, "schemavsn": v}) for v in ("3.3", "9.9", "")]
    batch, errors = decoder.decode_batch(payloads)
    assert errors == {} and batch.fallback.tolist() == [0, ztf_kernel.BAD_VERSION, ztf_kernel.BAD_VERSION]
    assert_agrees(batch, payloads)
    assert batch.schema_names[batch.schema_index[1]] == "ztf 9.9"


@pytest.mark.parametrize("object_id", ["", "ZTF" + "x" * 40, "ZTF18ábc", "ZTF\x0018"])
def test_object_ids_the_columns_cannot_hold_go_to_decode_ztf(decoder, object_id):
    schema, raw = read(ZTF17AAAJNNN)
    payload = packet(schema, {**raw, "objectId": object_id})
    batch, errors = decoder.decode_batch([payload])
    assert_agrees(batch, [payload])
    assert batch.ok[0] and batch.alert(0).object_id == object_id
    assert batch.fallback[0] == (0 if object_id == "" else ztf_kernel.BAD_OBJECT)


def test_a_schema_the_compiler_refuses_is_left_to_decode_ztf(monkeypatch):
    def refusing(schema):
        raise Unsupported("pretend")

    monkeypatch.setattr(fast_ztf, "compile_ztf_plan", refusing)
    decoder = FastZtfDecoder()
    payloads = [ZTF17AAAJNNN.read_bytes()] * 2
    batch, errors = decoder.decode_batch(payloads)
    assert errors == {} and batch.fallback.tolist() == [ztf_kernel.SCHEMA_LEFT] * 2
    assert_agrees(batch, payloads)
    assert list(decoder.plans.values()) == [None]


def test_writer_schemas_beyond_the_limit_go_to_decode_ztf(monkeypatch):
    monkeypatch.setattr(fast_ztf, "MAX_WRITER_SCHEMAS", 1)
    decoder = FastZtfDecoder()
    payloads = [ZTF17AAACXXF.read_bytes(), ZTF17AAAJNNN.read_bytes()]
    batch, errors = decoder.decode_batch(payloads)
    assert errors == {} and sorted(batch.fallback.tolist()) == [0, ztf_kernel.NEW_SCHEMA]
    assert_agrees(batch, payloads)
    assert len(decoder.plans) == 1


def test_a_schema_that_did_not_compile_gives_its_place_to_a_new_one(monkeypatch):
    """A full table of schemas that failed (corrupt packets, say) must not keep a valid one off the fast path."""
    monkeypatch.setattr(fast_ztf, "MAX_WRITER_SCHEMAS", 1)
    compile_plan, calls = fast_ztf.compile_ztf_plan, []

    def refusing_the_first(schema):
        calls.append(schema)
        if len(calls) == 1:
            raise Unsupported("pretend")
        return compile_plan(schema)

    monkeypatch.setattr(fast_ztf, "compile_ztf_plan", refusing_the_first)
    decoder = FastZtfDecoder()
    first, second = ZTF17AAACXXF.read_bytes(), ZTF17AAAJNNN.read_bytes()
    batch, _ = decoder.decode_batch([first])
    assert batch.fallback.tolist() == [ztf_kernel.SCHEMA_LEFT] and list(decoder.plans.values()) == [None]
    batch, errors = decoder.decode_batch([second, first])
    assert errors == {} and batch.fallback.tolist() == [0, ztf_kernel.NEW_SCHEMA]
    assert_agrees(batch, [second, first])
    assert len(decoder.plans) == 1 and None not in decoder.plans.values()


def test_a_batch_of_schemas_that_all_fail_ends(monkeypatch):
    """Each batch learns once: schemas that fail, more than the table holds, cannot make it loop."""
    monkeypatch.setattr(fast_ztf, "MAX_WRITER_SCHEMAS", 1)

    def refusing(schema):
        raise Unsupported("pretend")

    monkeypatch.setattr(fast_ztf, "compile_ztf_plan", refusing)
    decoder = FastZtfDecoder()
    payloads = [ZTF17AAACXXF.read_bytes(), ZTF17AAAJNNN.read_bytes()]
    for _ in range(3):
        batch, errors = decoder.decode_batch(payloads)
        assert errors == {} and 0 not in batch.fallback.tolist()
        assert_agrees(batch, payloads)
    assert len(decoder.plans) == 1


def test_a_mixed_batch_keeps_message_order(decoder, labelled):
    mixed = [labelled[0], b"junk", ZTF17AAACXXF.read_bytes(), None, labelled[5][:-20], labelled[7]]
    batch, errors = decoder.decode_batch(mixed)
    assert sorted(errors) == [1, 3, 4]
    assert batch.ok.tolist() == [True, False, True, False, False, True]
    assert_agrees(batch, [p or b"" for p in mixed])


def test_output_grows_when_the_first_guess_is_short(monkeypatch, labelled):
    monkeypatch.setattr(fast_ztf, "POINTS_PER_MESSAGE_GUESS", 1)
    decoder = FastZtfDecoder()
    payloads = [ZTF17AAACXXF.read_bytes()] * 5 + labelled[:20]
    batch, errors = decoder.decode_batch(payloads)
    assert errors == {} and not batch.fallback.any()
    assert_agrees(batch, payloads)
    assert decoder._points_guess > 1


def test_reason_codes_are_distinct_and_named():
    assert len(set(ztf_kernel.ZTF_REASONS)) == len(ztf_kernel.ZTF_REASONS) <= 127
    assert ztf_kernel.ZTF_REASONS[BAD_NULL] and ztf_kernel.ZTF_REASONS[BAD_VALUE]


def test_jit_time_is_measured(decoder):
    assert decoder.jit_s > 0


@pytest.mark.parametrize("fmt", ["ztf", "auto"])
def test_the_service_decodes_ztf_topics_in_batches(fmt, labelled):
    payloads = labelled[:30] + [labelled[30][:-20], ZTF17AAACXXF.read_bytes()]
    ingest = Ingest({"alerts": fmt}, "dlq")
    good, dead = ingest([FakeMessage(p, _topic="alerts", _offset=k) for k, p in enumerate(payloads)])
    assert ingest.fast_ztf is not None and ingest.fast_rubin is None
    assert [g.offset for g in good] == [*range(30), 31] and [d.source.offset() for d in dead] == [30]
    for g in good:
        assert_same_alert(g.alert, decode_ztf(payloads[g.offset]))
    with pytest.raises(BadPacket) as expected:
        decode_ztf(payloads[30])
    assert avro_io.decode(dead[0].value)[1]["reason"] == str(expected.value)

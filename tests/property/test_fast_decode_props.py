"""Property tests: FastRubinDecoder says what decode_rubin (fastavro) says, for any alert and any corruption.

The alerts: every schema version; every field of every record filled at
random (or null), so the skip plans meet strings, bytes, timestamps and nested
records with values; photometry with repeated source ids, forced points on
detection visits, NaN and infinite values, non-positive errors, unknown bands
and nulls. decode_rubin is the oracle: the batch must give its alert field for
field, or its BadPacket; and for well-formed bytes the fast path must decode
exactly the alerts decode_rubin accepts (no needless fallback).
"""
import io
import re

import fastavro._read
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from stream.decode import decode_rubin, encode_rubin, rubin_schema, rubin_versions, schema_id
from stream.decode.fast import FastRubinDecoder, kernel
from stream.decode.fast.plan import TIMESTAMP_RANGE
from stream.errors import BadPacket

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")  # fastavro's EOFError names its BytesIO
_TEXT = np.array(list("aZ09 _-é€😀\x00"))  # 1- to 4-byte UTF-8
_BANDS = list("ugrizy")
_BAD_BANDS = ["q", "", "rr", "é", "U", None]
_INT32 = 2**31


_DECODER = None


def _decoder() -> FastRubinDecoder:
    """One decoder for the module (hypothesis tests cannot take function-scoped fixtures)."""
    global _DECODER
    if _DECODER is None:
        _DECODER = FastRubinDecoder()
    return _DECODER


# --- any value of a schema, from a numpy generator ---------------------------------------------

def random_value(schema, named: dict, rng: np.random.Generator, null_rate: float):
    """A random value of `schema`: nullable fields null with probability `null_rate`."""
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        if "null" in schema and rng.random() < null_rate:
            return None
        branches = [b for b in schema if b != "null"]
        return random_value(branches[int(rng.integers(len(branches)))], named, rng, null_rate)
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            return {f["name"]: random_value(f["type"], named, rng, null_rate) for f in schema["fields"]}
        if kind == "array":
            return [random_value(schema["items"], named, rng, null_rate) for _ in range(int(rng.integers(3)))]
        if kind == "map":
            return {f"k{i}": random_value(schema["values"], named, rng, null_rate) for i in range(rng.integers(3))}
        if kind == "enum":
            return schema["symbols"][int(rng.integers(len(schema["symbols"])))]
        if kind == "fixed":
            return rng.bytes(schema["size"])
        logical = f"{kind}-{schema.get('logicalType')}"
        if logical in TIMESTAMP_RANGE:
            lo, hi = TIMESTAMP_RANGE[logical]
            return int(rng.integers(lo, hi, endpoint=True))
        return random_value(kind, named, rng, null_rate)
    if schema == "boolean":
        return bool(rng.integers(2))
    if schema == "int":
        return int(rng.integers(-_INT32, _INT32))
    if schema == "long":
        return int(rng.integers(-2**63, 2**63, dtype=np.int64)) >> int(rng.integers(64))  # all magnitudes
    if schema == "float":
        return float(rng.choice([np.nan, np.inf, -0.0, float(np.float32(rng.normal() * 1e3))]))
    if schema == "double":
        return float(rng.choice([np.nan, -np.inf, 0.0, rng.normal() * 1e6]))
    if schema == "string":
        return "".join(rng.choice(_TEXT, int(rng.integers(0, 8))))
    if schema == "bytes":
        return rng.bytes(int(rng.integers(0, 12)))
    assert schema == "null", schema
    return None


# --- photometry from hypothesis -----------------------------------------------------------------

source_ids = st.one_of(st.integers(1, 6), st.integers(-2**63, 2**63 - 1))  # small: repeats
visits = st.one_of(st.integers(1, 6), st.integers(0, 2**40))
flux_njy = st.one_of(st.floats(-1e7, 1e7, width=32), st.sampled_from([float("nan"), float("inf"), 3e38]),
                     st.none())
flux_err_njy = st.one_of(st.floats(0.5, 1e6, width=32), st.sampled_from([0.0, -1.0, float("nan"), 1e-46]),
                         st.none())
mjd_tai = st.one_of(st.floats(58000.0, 66000.0), st.sampled_from([float("nan"), float("-inf")]))
bands = st.one_of(st.sampled_from(_BANDS), st.sampled_from(_BAD_BANDS))


def likely(good, bad, odds: int = 12):
    """`good`, or now and then `bad`: most alerts stay valid, so the fast path is exercised."""
    return st.integers(0, odds).flatmap(lambda k: bad if k == 0 else good)


@st.composite
def photometry(draw, id_field: str) -> dict:
    """A point's photometry fields: mostly valid, now and then null, non-finite or of an unknown band."""
    return {id_field: draw(source_ids), "visit": draw(visits),
            "midpointMjdTai": draw(likely(st.floats(58000.0, 66000.0), mjd_tai)),
            "band": draw(likely(st.sampled_from(_BANDS), bands)),
            "psfFlux": draw(likely(st.floats(-1e7, 1e7, width=32), flux_njy)),
            "psfFluxErr": draw(likely(st.floats(0.5, 1e6, width=32), flux_err_njy))}


@st.composite
def rubin_alerts(draw) -> tuple[str, dict]:
    """(version, record): every field set at random, photometry from hypothesis."""
    version = draw(st.sampled_from(rubin_versions()))
    schema = rubin_schema(version)
    named = schema["__named_schemas"]
    prefix = schema["name"].rsplit(".", 1)[0]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    null_rate = draw(st.sampled_from([0.0, 0.3, 1.0]))
    record = random_value(schema, named, rng, null_rate)

    def point(kind: str, id_field: str, extra: dict) -> dict:
        return {**random_value(named[f"{prefix}.{kind}"], named, rng, null_rate),
                **draw(photometry(id_field)), **extra}

    object_id = draw(likely(st.integers(1, 2**63 - 1), st.sampled_from([0, None])))
    ss_object_id = draw(st.one_of(st.none(), st.integers(0, 2**63 - 1)))
    trigger = point("diaSource", "diaSourceId", {"diaObjectId": object_id, "ssObjectId": ss_object_id,
                                                 "ra": draw(likely(st.floats(0, 360), st.just(float("nan")))),
                                                 "dec": -30.0})
    detections = [point("diaSource", "diaSourceId", {}) for _ in range(draw(st.integers(0, 5)))]
    detected = [trigger["visit"], *(p["visit"] for p in detections)]
    forced = []
    for _ in range(draw(st.integers(0, 5))):
        on_detection = draw(st.booleans())
        forced.append(point("diaForcedSource", "diaForcedSourceId",
                            {"visit": draw(st.sampled_from(detected))} if on_detection else {}))
    record.update(diaSource=trigger, prvDiaSources=draw(st.sampled_from([detections, detections, None])),
                  prvDiaForcedSources=forced if forced or draw(st.booleans()) else None)
    record["alertId" if "alertId" in record else "diaSourceId"] = draw(source_ids)
    for cutout in ("cutoutDifference", "cutoutScience", "cutoutTemplate"):
        record[cutout] = rng.bytes(int(rng.integers(0, 64))) if rng.random() > null_rate else None
    return version, record


# --- the oracle -----------------------------------------------------------------------------------

def assert_agrees(payloads: list[bytes], *, version: str | None = None, decoder=None) -> np.ndarray:
    """The batch says what decode_rubin says, message by message; returns which messages decode_rubin decoded."""
    decoder = decoder or (_decoder() if version is None else FastRubinDecoder(version=version))
    batch, errors = decoder.decode_batch(payloads)
    accepted = np.zeros(len(payloads), dtype=bool)
    assert batch.curves.offsets[-1] == len(batch.curves.mjd_tai)
    for i, payload in enumerate(payloads):
        try:
            expected = decode_rubin(payload, version=version)
        except BadPacket as err:
            assert not batch.ok[i], (i, err)
            assert type(errors[i]) is BadPacket
            assert _ADDRESS.sub("", str(errors[i])) == _ADDRESS.sub("", str(err))
            continue
        accepted[i] = True
        assert batch.ok[i], (i, errors.get(i))
        got = batch.alert(i)
        assert (got.schema, got.alert_id, got.source_id, got.object_id, got.ra_deg, got.dec_deg) == (
            expected.schema, expected.alert_id, expected.source_id, expected.object_id, expected.ra_deg,
            expected.dec_deg)
        for field in expected.light_curve.FIELDS:
            a, b = getattr(got.light_curve, field), getattr(expected.light_curve, field)
            assert a.dtype == b.dtype and np.array_equal(a, b), field
    return accepted


@SETTINGS
@given(st.lists(rubin_alerts(), min_size=1, max_size=4))
def test_generated_alerts_agree_and_take_the_fast_path(alerts):
    payloads = [encode_rubin(record, version) for version, record in alerts]
    accepted = assert_agrees(payloads)
    batch, _ = _decoder().decode_batch(payloads)
    assert np.array_equal(batch.fallback == 0, accepted)  # well-formed bytes: fast iff decode_rubin accepts


@settings(SETTINGS, max_examples=50)
@given(rubin_alerts())
def test_generated_schemaless_alerts_agree(alert):
    version, record = alert
    assert_agrees([encode_rubin(record, version, wire_format=False)], version=version)


@st.composite
def corrupted(draw, payload: bytes) -> bytes:
    """`payload` truncated, extended, with flipped or overwritten bytes (anywhere, or past the header)."""
    data = bytearray(payload)
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "append"]))
    if kind == "truncate":
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    if kind == "append":
        return bytes(data) + draw(st.binary(min_size=1, max_size=8))
    start = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        for i in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=4)):
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "overwrite":
        chunk = draw(st.binary(min_size=1, max_size=16))
        data[start:start + len(chunk)] = chunk
    else:
        data[start:start] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


@settings(SETTINGS, max_examples=200)
@given(rubin_alerts(), st.data())
def test_corrupted_payloads_agree(alert, data):
    version, record = alert
    assert_agrees([data.draw(corrupted(encode_rubin(record, version))) for _ in range(3)])


@settings(SETTINGS, max_examples=100)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4), st.sampled_from(rubin_versions()))
def test_random_bytes_agree(blobs, version):
    wire = [b"\x00" + schema_id(version).to_bytes(4, "big") + blob for blob in blobs]
    assert_agrees(wire + blobs)


@settings(SETTINGS, max_examples=200)
@given(st.binary(min_size=0, max_size=12))
@example(b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x7f")  # 10th byte beyond 64 bits: fastavro keeps its low bit
@example(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")  # INT64_MIN
@example(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")  # 11 bytes: left to fastavro
def test_varints_decode_as_fastavro_reads_them(data):
    buf = np.frombuffer(data, dtype=np.uint8)
    value, pos = kernel._varint(buf, 0, len(buf))
    if pos == -2:
        assert len(data) > 10
        return
    fo = io.BytesIO(data)
    if pos == -1:
        with pytest.raises((EOFError, IndexError, StopIteration)):
            fastavro._read.read_long(fo)
        return
    assert fastavro._read.read_long(fo) == value and fo.tell() == pos


@settings(SETTINGS, max_examples=300)
@given(st.one_of(st.binary(max_size=16), st.text(max_size=8).map(str.encode),
                 st.lists(st.sampled_from([0x41, 0x80, 0xBF, 0xC2, 0xDF, 0xE0, 0xA0, 0xED, 0x9F, 0xF0, 0x90,
                                           0xF4, 0x8F, 0xF5, 0xC0]), max_size=6).map(bytes)))
@example(b"\xed\xa0\x80")  # a surrogate
@example(b"\xf4\x90\x80\x80")  # above U+10FFFF
@example(b"\xe0\x80\xaf")  # overlong
def test_utf8_check_is_pythons(data):
    try:
        data.decode()
        python_ok = True
    except UnicodeDecodeError:
        python_ok = False
    assert kernel._utf8_ok(np.frombuffer(data, dtype=np.uint8), 0, len(data)) == python_ok

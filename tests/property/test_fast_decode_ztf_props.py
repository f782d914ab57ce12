"""Property tests: FastZtfDecoder says what decode_ztf (fastavro and astropy) says, for any packet and any corruption.

The packets: ZTF's writer schemas 3.2 and 3.3 (from its own packets) and 4.02 (``data/ztf/schema``); every
field of the alert, the candidate and the previous candidates filled at random (or null), with cutouts;
photometry from hypothesis with repeated candids and exposures, upper limits, NaN and infinite values,
magnitudes whose flux overflows or vanishes, non-positive errors, unknown filters and isdiffpos values,
times outside ZTF's era, nulls; schema versions and object ids the fast path does not take. decode_ztf is
the oracle: the batch must give its alert field for field (MJD TAI to the bit), or its BadPacket; and
where decode_ztf accepts a packet the fast path can hold, the fast path must decode it (no needless
fallback).
"""
import io
import re
from pathlib import Path

import fastavro
import numpy as np
from hypothesis import HealthCheck, event, given, settings, strategies as st
from test_fast_decode_props import corrupted, likely, random_value

from stream.decode import decode_ztf
from stream.decode.fast.ztf import KNOWN_VERSIONS, FastZtfDecoder
from stream.errors import BadPacket
from training.real_packets import ztf_schema

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")
ALERTS = Path(__file__).resolve().parents[2] / "data" / "ztf" / "alerts"
JD_2018, JD_2030 = 2458119.5, 2462502.5


def _writer_schema(path: Path) -> dict:
    with path.open("rb") as fh:
        return fastavro.parse_schema(fastavro.reader(fh).writer_schema)


SCHEMAS = [_writer_schema(ALERTS / "2019_01_10_739260766315010006.avro"),  # 3.2
           _writer_schema(ALERTS / "472263571115115000.avro"), ztf_schema()]  # 3.3, 4.02
_DECODERS: dict[str, FastZtfDecoder] = {}


def _decoder(name: str) -> FastZtfDecoder:
    """One decoder per test (hypothesis tests cannot take function-scoped fixtures): corrupted schemas
    fill a decoder's table of writer schemas."""
    if name not in _DECODERS:
        _DECODERS[name] = FastZtfDecoder()
    return _DECODERS[name]


# --- photometry from hypothesis -----------------------------------------------------------------

candids = st.one_of(st.integers(1, 5), st.integers(0, 2**63 - 1))  # small: repeats
jds = likely(st.floats(JD_2018, JD_2030), st.one_of(st.sampled_from([float("nan"), float("inf"), 1.0, 2488100.0]),
                                                     st.floats(2451544.5, 2488069.5)))
mags = likely(st.floats(12.0, 23.0, width=32), st.sampled_from([float("nan"), float("-inf"), -1000.0, 1000.0, -40.0]))
sigmas = likely(st.floats(0.0009765625, 1.0, width=32), st.sampled_from([0.0, -1.0, float("nan"), None]))
fids = likely(st.sampled_from([1, 2, 3]), st.sampled_from([0, 4, -1, None]))
signs = likely(st.sampled_from(["t", "f", "1", "0"]), st.sampled_from(["x", "", "tt", "T", None]))


@st.composite
def photometry(draw, limit: bool) -> dict:
    """A point's fields: a detection (magpsf set) or an upper limit (magpsf null); mostly valid."""
    return {"candid": draw(likely(candids, st.none())), "jd": draw(st.one_of(jds, st.sampled_from([JD_2018 + 30]))),
            "fid": draw(fids), "magpsf": None if limit else draw(likely(mags, st.none(), odds=30)),
            "sigmapsf": draw(sigmas), "isdiffpos": draw(signs), "diffmaglim": draw(likely(mags, st.none()))}


@st.composite
def ztf_packets(draw) -> tuple[dict, dict]:
    """(writer schema, record): every field set at random, photometry from hypothesis."""
    schema = draw(st.sampled_from(SCHEMAS))
    named = schema["__named_schemas"]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    null_rate = draw(st.sampled_from([0.0, 0.3, 1.0]))
    record = random_value(schema, named, rng, null_rate)

    def point(kind: str, limit: bool) -> dict:
        fields = named[f"ztf.alert.{kind}"]["fields"]
        value = random_value(named[f"ztf.alert.{kind}"], named, rng, null_rate)
        for f in fields:  # the ZTF fields of the context, -999 now and then (nothing found nearby)
            if f["name"] in ("sgscore1", "distpsnr1", "ssdistnr", "neargaia", "distnr", "magnr") and rng.random() < 0.2:
                value[f["name"]] = -999.0
        if kind == "candidate":
            value["jdstarthist"] = float(rng.choice([np.nan, 2458000.5, 1.0, rng.uniform(JD_2018, JD_2030)]))
        photometry_fields = draw(photometry(limit))
        nullable = {f["name"] for f in fields if isinstance(f["type"], list)}
        value.update({k: v for k, v in photometry_fields.items() if v is not None or k in nullable})
        return value

    candidate = point("candidate", limit=False)
    candidate.update(ra=draw(likely(st.floats(0, 359.9), st.sampled_from([float("nan"), 360.0, 720.0]))),
                     dec=draw(likely(st.floats(-90, 90), st.just(-91.0))))
    previous = [point("prv_candidate", limit=draw(st.booleans())) for _ in range(draw(st.integers(0, 6)))]
    if previous and draw(st.booleans()):
        previous.append(dict(draw(st.sampled_from(previous))))  # a repeated point
    record.update(candidate=candidate, candid=draw(candids),
                  prv_candidates=draw(st.sampled_from([previous, previous, None])),
                  schemavsn=draw(likely(st.sampled_from(KNOWN_VERSIONS), st.sampled_from(["3.0", "9", ""]))),
                  objectId=draw(likely(st.just("ZTF18abcdefg"), st.sampled_from(["", "ZTF18ábc", "x" * 40]))))
    return schema, record


def encode(schema: dict, record: dict) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, [record])
    return buffer.getvalue()


# --- the oracle -----------------------------------------------------------------------------------

def assert_agrees(payloads: list[bytes], decoder: FastZtfDecoder) -> np.ndarray:
    """The batch says what decode_ztf says, message by message; returns which messages decode_ztf decoded."""
    batch, errors = decoder.decode_batch(payloads)
    accepted = np.zeros(len(payloads), dtype=bool)
    assert batch.curves.offsets[-1] == len(batch.curves.mjd_tai)
    listed = batch.alerts()
    for i, payload in enumerate(payloads):
        try:
            expected = decode_ztf(payload)
        except BadPacket as err:
            assert not batch.ok[i] and listed[i] is None, (i, err)
            assert type(errors[i]) is BadPacket
            assert _ADDRESS.sub("", str(errors[i])) == _ADDRESS.sub("", str(err))
            continue
        accepted[i] = True
        assert batch.ok[i], (i, errors.get(i))
        for got in (batch.alert(i), listed[i]):
            assert (got.schema, got.alert_id, got.source_id, got.object_id, got.ra_deg, got.dec_deg,
                    got.dropped_points) == (expected.schema, expected.alert_id, expected.source_id,
                                            expected.object_id, expected.ra_deg, expected.dec_deg,
                                            expected.dropped_points)
            for name in expected.light_curve.FIELDS:
                a, b = getattr(got.light_curve, name), getattr(expected.light_curve, name)
                assert a.dtype == b.dtype and np.array_equal(a, b), name
            assert np.array_equal(got.context, expected.context, equal_nan=True)
    return accepted


@SETTINGS
@given(st.lists(ztf_packets(), min_size=1, max_size=4))
def test_generated_packets_agree_and_take_the_fast_path(packets):
    payloads = [encode(schema, record) for schema, record in packets]
    decoder = _decoder("generated")
    accepted = assert_agrees(payloads, decoder)
    batch, _ = decoder.decode_batch(payloads)
    holdable = np.array([r["schemavsn"] in KNOWN_VERSIONS and r["objectId"].isascii() and len(r["objectId"]) <= 32
                         for _, r in packets])
    assert np.array_equal(batch.fallback == 0, accepted & holdable)
    for reason in batch.fallback.tolist():
        event(f"fallback reason {reason}")


@settings(SETTINGS, max_examples=200)
@given(ztf_packets(), st.data())
def test_corrupted_packets_agree(packet, data):
    payload = encode(*packet)
    assert_agrees([data.draw(corrupted(payload)) for _ in range(3)], _decoder("corrupted"))


@settings(SETTINGS, max_examples=100)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_random_bytes_agree(blobs):
    assert_agrees([b"Obj\x01" + blob for blob in blobs] + blobs, _decoder("random"))

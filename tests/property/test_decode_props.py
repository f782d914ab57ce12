"""Property tests of the decoders: valid alerts round-trip; corrupt bytes give BadPacket or an alert.

Never anything else: a decoder that lets a library exception escape would stop
the stream instead of dead-lettering one message.
"""
import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from models.bands import BAND_CODE
from stream.decode import decode_auto, decode_rubin, decode_ztf, encode_rubin, rubin_schema, rubin_versions
from stream.errors import BadPacket

DATA = Path(__file__).resolve().parents[2] / "data"
ZTF_PACKETS = [path.read_bytes() for path in sorted((DATA / "ztf" / "alerts").glob("*.avro"))]
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

flux_njy = st.floats(-1e7, 1e7, width=32)  # Avro float: exact round trip
flux_err_njy = st.floats(0.5, 1e6, width=32)
mjd_tai = st.floats(58000.0, 66000.0)


def _has_alert_id(version: str) -> bool:
    return any(field["name"] == "alertId" for field in rubin_schema(version)["fields"])


@st.composite
def rubin_alerts(draw) -> tuple[str, dict]:
    """(version, record) of a valid Rubin alert with only the fields the decoder reads filled in.

    Forced sources may fall on a detection's visit (the decoder drops those).
    """
    version = draw(st.sampled_from(rubin_versions()))
    n_detections = draw(st.integers(1, 8))
    n_forced = draw(st.integers(0, 8))
    visits = draw(st.lists(st.integers(1, 2**40), min_size=n_detections + n_forced,
                           max_size=n_detections + n_forced, unique=True))
    source_ids = draw(st.lists(st.integers(1, 2**62), min_size=n_detections + n_forced,
                               max_size=n_detections + n_forced, unique=True))
    object_id = draw(st.integers(1, 2**62))

    def point(i: int, visit: int) -> dict:
        return {"diaObjectId": object_id, "visit": visit, "midpointMjdTai": draw(mjd_tai),
                "band": draw(st.sampled_from("ugrizy")), "psfFlux": draw(flux_njy),
                "psfFluxErr": draw(flux_err_njy), "ra": 45.0, "dec": -30.0}

    detections = [{"diaSourceId": source_ids[i], **point(i, visits[i])} for i in range(n_detections)]
    forced = [{"diaForcedSourceId": source_ids[i],
               **point(i, draw(st.sampled_from(visits[:n_detections])) if draw(st.booleans()) else visits[i])}
              for i in range(n_detections, n_detections + n_forced)]
    record = {"alertId" if _has_alert_id(version) else "diaSourceId": detections[0]["diaSourceId"],
              "diaSource": detections[0], "prvDiaSources": detections[1:], "prvDiaForcedSources": forced}
    return version, record


def _expected_points(record: dict) -> list[tuple]:
    """(source id, mjd_tai, band code, flux_njy, flux_err_njy, is_detection) sorted by source id."""
    detections = [record["diaSource"], *record["prvDiaSources"]]
    visits = {p["visit"] for p in detections}
    points = [(p["diaSourceId"], p, True) for p in detections] + [
        (p["diaForcedSourceId"], p, False) for p in record["prvDiaForcedSources"] if p["visit"] not in visits]
    return sorted((i, p["midpointMjdTai"], BAND_CODE["lsst-" + p["band"]], p["psfFlux"], p["psfFluxErr"], d)
                  for i, p, d in points)


def _points(alert) -> list[tuple]:
    lc = alert.light_curve
    return sorted(zip(lc.source_id.tolist(), lc.mjd_tai.tolist(), lc.band.tolist(), lc.flux_njy.tolist(),
                      lc.flux_err_njy.tolist(), lc.is_detection.tolist()))


def _decodes_or_raises_bad_packet(decode, payload: bytes) -> None:
    try:
        alert = decode(payload)
    except BadPacket as err:
        assert str(err)
    else:
        lc = alert.light_curve
        assert np.all(np.isfinite(lc.mjd_tai)) and np.all(lc.flux_err_njy > 0)


@st.composite
def corrupted(draw, payload: bytes) -> bytes:
    """`payload` truncated, with flipped or overwritten bytes, with a wrong magic byte, or random bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "magic", "random"]))
    data = bytearray(payload)
    if kind == "truncate":
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    if kind == "flip":
        for i in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "overwrite":
        start = draw(st.integers(0, len(data) - 1))
        chunk = draw(st.binary(min_size=1, max_size=16))
        data[start:start + len(chunk)] = chunk
    elif kind == "magic":
        data[0] = draw(st.integers(1, 255))
    else:
        return draw(st.binary(max_size=256))
    return bytes(data)


@FAST
@given(rubin_alerts())
def test_valid_rubin_alerts_round_trip(alert):
    version, record = alert
    decoded = decode_rubin(encode_rubin(record, version, fill_defaults=True))
    assert decoded.source_id == record["diaSource"]["diaSourceId"]
    assert decoded.object_id == str(record["diaSource"]["diaObjectId"])
    assert _points(decoded) == _expected_points(record)
    assert np.all(np.diff(decoded.light_curve.mjd_tai) >= 0)


@FAST
@given(rubin_alerts())
def test_schemaless_rubin_alerts_round_trip(alert):
    version, record = alert
    payload = encode_rubin(record, version, wire_format=False, fill_defaults=True)
    assert _points(decode_rubin(payload, version=version)) == _expected_points(record)


@FAST
@given(rubin_alerts(), st.data())
def test_corrupted_rubin_payload_decodes_or_raises_bad_packet(alert, data):
    version, record = alert
    payload = data.draw(corrupted(encode_rubin(record, version, fill_defaults=True)))
    _decodes_or_raises_bad_packet(decode_rubin, payload)
    _decodes_or_raises_bad_packet(decode_auto, payload)


@FAST
@given(rubin_alerts(), st.data(), st.sampled_from(["psfFlux", "psfFluxErr", "midpointMjdTai"]),
       st.sampled_from([math.nan, math.inf, -math.inf]))
def test_non_finite_value_is_a_bad_packet_naming_the_point(alert, data, field, value):
    version, record = alert
    detections = [record["diaSource"], *record["prvDiaSources"]]
    i = data.draw(st.integers(0, len(detections) - 1))
    detections[i] = {**detections[i], field: value}
    assume(detections[i]["diaSourceId"] not in {p["diaSourceId"] for p in detections[:i]})
    bad = {**record, "diaSource": detections[0], "prvDiaSources": detections[1:]}
    name = "diaSource" if i == 0 else f"prvDiaSources[{i - 1}]"
    problem = "NaN" if math.isnan(value) else "inf"
    try:
        decode_rubin(encode_rubin(bad, version, fill_defaults=True))
    except BadPacket as err:
        assert str(err) == f"{name}.{field} is {problem}"
    else:
        raise AssertionError("a non-finite value decoded")


@FAST
@given(st.sampled_from(ZTF_PACKETS), st.data())
def test_corrupted_ztf_packet_decodes_or_raises_bad_packet(packet, data):
    payload = data.draw(corrupted(packet))
    _decodes_or_raises_bad_packet(decode_ztf, payload)
    _decodes_or_raises_bad_packet(decode_auto, payload)


@FAST
@given(st.binary(max_size=512))
def test_random_bytes_decode_or_raise_bad_packet(payload):
    for decode in (decode_auto, decode_rubin, decode_ztf):
        _decodes_or_raises_bad_packet(decode, payload)
    _decodes_or_raises_bad_packet(lambda p: decode_rubin(p, version="10.0"), payload)

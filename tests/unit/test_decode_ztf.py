"""ZTF decoder: the two real alert packets in data/ztf/alerts (public ZTF alert stream)."""
import io
import math
from pathlib import Path

import fastavro
import numpy as np
import pytest

from models.bands import BAND_CODE
from models.lightcurve import LightCurve
from stream.decode import decode_auto, decode_ztf, get_decoder
from stream.errors import BadPacket

DATA = Path(__file__).resolve().parents[2] / "data"
ALERTS = DATA / "ztf" / "alerts"
PACKETS = sorted(ALERTS.glob("*.avro"))
ZTF17AAACXXF = ALERTS / "2019_01_10_739260766315010006.avro"  # schema 3.2, 28 prv_candidates
ZTF17AAAJNNN = ALERTS / "472263571115115000.avro"  # schema 3.3, 11 prv_candidates


def _read(path: Path) -> tuple[dict, dict]:
    """(writer schema, alert record) of a packet, read with fastavro alone."""
    with path.open("rb") as fh:
        reader = fastavro.reader(fh)
        (alert,) = list(reader)
        return reader.writer_schema, alert


def _packet(schema: dict, *alerts: dict) -> bytes:
    """A container file with `alerts`, as ZTF writes it."""
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, list(alerts))
    return buffer.getvalue()


def test_both_packets_are_present():
    assert PACKETS == sorted([ZTF17AAACXXF, ZTF17AAAJNNN])


@pytest.mark.parametrize("path, n_detections, n_limits", [(ZTF17AAACXXF, 23, 6), (ZTF17AAAJNNN, 1, 11)],
                         ids=lambda p: getattr(p, "name", str(p)))
def test_detections_and_upper_limits_are_counted(path, n_detections, n_limits):
    _, raw = _read(path)
    previous = raw["prv_candidates"] or []
    assert 1 + sum(p["magpsf"] is not None for p in previous) == n_detections
    assert sum(p["magpsf"] is None for p in previous) == n_limits

    alert = decode_ztf(path.read_bytes())
    lc = alert.light_curve
    assert (int(lc.is_detection.sum()), int((~lc.is_detection).sum())) == (n_detections, n_limits)
    detected_ids = {raw["candidate"]["candid"]} | {p["candid"] for p in previous if p["magpsf"] is not None}
    assert set(lc.source_id[lc.is_detection].tolist()) == detected_ids
    assert np.all(lc.source_id[~lc.is_detection] < 0)
    assert (alert.survey, alert.schema) == ("ztf", f"ztf {raw['schemavsn']}")
    assert (alert.alert_id, alert.source_id, alert.object_id) == (raw["candid"], raw["candid"], raw["objectId"])
    assert (alert.ra_deg, alert.dec_deg) == (raw["candidate"]["ra"], raw["candidate"]["dec"])


def test_flux_by_hand():
    # ZTF17aaacxxf: a negative difference (isdiffpos 'f') at magpsf 15.3711 in r.
    _, raw = _read(ZTF17AAACXXF)
    candidate = raw["candidate"]
    assert (candidate["isdiffpos"], candidate["fid"]) == ("f", 2)
    lc = decode_ztf(ZTF17AAACXXF.read_bytes()).light_curve
    i = int(np.flatnonzero(lc.source_id == candidate["candid"])[0])
    expected = -(10 ** ((31.4 - candidate["magpsf"]) / 2.5))
    assert expected == pytest.approx(-2.5796e6, rel=1e-4)
    assert lc.flux_njy[i] == pytest.approx(expected, rel=1e-6)
    assert lc.flux_err_njy[i] == pytest.approx(-expected * math.log(10) / 2.5 * candidate["sigmapsf"], rel=1e-6)
    assert lc.band[i] == BAND_CODE["ztf-r"]

    # ZTF17aaajnnn: a positive difference (isdiffpos 't') at magpsf 18.3619 in r.
    _, raw = _read(ZTF17AAAJNNN)
    candidate = raw["candidate"]
    assert candidate["isdiffpos"] == "t"
    lc = decode_ztf(ZTF17AAAJNNN.read_bytes()).light_curve
    i = int(np.flatnonzero(lc.is_detection)[0])
    assert lc.flux_njy[i] == pytest.approx(10 ** ((31.4 - candidate["magpsf"]) / 2.5), rel=1e-6)
    assert lc.flux_njy[i] == pytest.approx(1.6416e5, rel=1e-4)


def test_upper_limits_have_zero_flux_and_a_fifth_of_the_limit_as_error():
    _, raw = _read(ZTF17AAAJNNN)
    limits = sorted((p["jd"], p["diffmaglim"]) for p in raw["prv_candidates"])
    lc = decode_ztf(ZTF17AAAJNNN.read_bytes()).light_curve
    assert np.all(lc.flux_njy[~lc.is_detection] == 0)
    expected = [10 ** ((31.4 - m) / 2.5) / 5 for _, m in limits]
    np.testing.assert_allclose(lc.flux_err_njy[~lc.is_detection], expected, rtol=1e-6)


def test_times_are_mjd_tai():
    _, raw = _read(ZTF17AAACXXF)
    lc = decode_ztf(ZTF17AAACXXF.read_bytes()).light_curve
    i = int(np.flatnonzero(lc.source_id == raw["candid"])[0])
    tai_minus_utc_s = (lc.mjd_tai[i] - (raw["candidate"]["jd"] - 2400000.5)) * 86400
    assert tai_minus_utc_s == pytest.approx(37.0, abs=1e-3)  # TAI - UTC since 2017
    assert np.all(np.diff(lc.mjd_tai) >= 0)


def test_upper_limit_ids_are_stable_across_packets():
    schema, raw = _read(ZTF17AAACXXF)
    earlier = {**raw, "prv_candidates": raw["prv_candidates"][:10]}
    full = decode_ztf(ZTF17AAACXXF.read_bytes()).light_curve
    part = decode_ztf(_packet(schema, earlier)).light_curve
    part_limits = set(part.source_id[~part.is_detection].tolist())
    assert part_limits and part_limits <= set(full.source_id[~full.is_detection].tolist())
    assert len(LightCurve.concatenate([full, part])) == len(full)


def test_null_prv_candidates_leave_the_candidate_alone():
    schema, raw = _read(ZTF17AAAJNNN)
    lc = decode_ztf(_packet(schema, {**raw, "prv_candidates": None})).light_curve
    assert lc.source_id.tolist() == [raw["candid"]]


@pytest.mark.parametrize("field, value, message", [
    ("magpsf", math.nan, r"^candidate.magpsf is NaN"),
    ("sigmapsf", 0.0, r"^candidate.sigmapsf is not positive \(0.0\)"),
    ("isdiffpos", "x", r"^candidate.isdiffpos is 'x', expected one of t, 1, f, 0"),
    ("fid", 4, r"^candidate.fid is 4, expected one of 1, 2, 3"),
    ("jd", math.inf, r"^candidate.jd is inf"),
    ("jd", 1.0, r"^candidate.jd is 1.0, outside"),
])
def test_bad_candidate_is_a_bad_packet_naming_the_field(field, value, message):
    schema, raw = _read(ZTF17AAAJNNN)
    with pytest.raises(BadPacket, match=message):
        decode_ztf(_packet(schema, {**raw, "candidate": {**raw["candidate"], field: value}}))


def test_upper_limit_without_diffmaglim_is_a_bad_packet():
    schema, raw = _read(ZTF17AAAJNNN)
    previous = [dict(p) for p in raw["prv_candidates"]]
    previous[3]["diffmaglim"] = None
    with pytest.raises(BadPacket, match=r"^prv_candidates\[3\].diffmaglim is null"):
        decode_ztf(_packet(schema, {**raw, "prv_candidates": previous}))


def test_two_alerts_in_one_container_are_a_bad_packet():
    schema, raw = _read(ZTF17AAAJNNN)
    with pytest.raises(BadPacket, match="container holds 2 records, expected one alert"):
        decode_ztf(_packet(schema, raw, raw))


@pytest.mark.parametrize("payload, message", [
    (b"", r"^empty message"),
    (b"\x00\x00\x00\x03\xe8", r"^not an Avro object container file \(starts with b'\\x00"),
    (ZTF17AAAJNNN.read_bytes()[:3000], r"^truncated or corrupt Avro container file \(3000 byte\(s\)\)"),
])
def test_undecodable_bytes_are_a_bad_packet(payload, message):
    with pytest.raises(BadPacket, match=message):
        decode_ztf(payload)


def test_auto_detects_a_container_file():
    alert = get_decoder("auto")(ZTF17AAAJNNN.read_bytes())
    assert alert.survey == "ztf"
    with pytest.raises(BadPacket, match="unrecognised alert format"):
        decode_auto(b"{json}")


def test_implausible_history_point_is_dropped_and_counted():
    schema, raw = _read(ZTF17AAACXXF)
    prv = [dict(p) for p in raw["prv_candidates"]]
    k = next(k for k, p in enumerate(prv) if p["magpsf"] is not None)
    prv[k]["magpsf"] = -40.0  # 10^((31.4 + 40) / 2.5) nJy: finite, impossible
    alert = decode_ztf(_packet(schema, {**raw, "prv_candidates": prv}))
    whole = decode_ztf(ZTF17AAACXXF.read_bytes())
    assert alert.dropped_points == 1 and len(alert.light_curve) == len(whole.light_curve) - 1
    assert prv[k]["candid"] not in alert.light_curve.source_id


@pytest.mark.parametrize("field, value, message", [
    ("magpsf", -40.0, r"^candidate.magpsf gives .* nJy, beyond"),
    ("ra", 720.0, r"^candidate.ra is 720.0, outside"),
    ("dec", -91.0, r"^candidate.dec is -91.0, outside"),
])
def test_implausible_candidate_is_a_bad_packet_naming_the_field(field, value, message):
    schema, raw = _read(ZTF17AAAJNNN)
    with pytest.raises(BadPacket, match=message):
        decode_ztf(_packet(schema, {**raw, "candidate": {**raw["candidate"], field: value}}))

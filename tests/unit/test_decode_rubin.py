"""Rubin decoder: 25 real LSSTCam alerts (lsst.v10_0) re-encoded in the Confluent wire format.

The alerts come from ``data/rubin/lsstcam_alerts_v10_sample.parquet``
(astrolabsoftware/fink-science, Apache-2.0); see data/README.md.
"""
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from models.bands import BAND_CODE
from stream.decode import (
    decode_auto, decode_rubin, encode_rubin, get_decoder, rubin_records_from_parquet, rubin_schema,
    rubin_versions, schema_id,
)
from stream.errors import BadPacket, ConfigError

DATA = Path(__file__).resolve().parents[2] / "data"
PARQUET = DATA / "rubin" / "lsstcam_alerts_v10_sample.parquet"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return pq.read_table(PARQUET).to_pylist()


@pytest.fixture(scope="module")
def records() -> list[dict]:
    records, version = rubin_records_from_parquet(PARQUET)
    assert version == "10.0"  # from the lsst_schema_version column
    return records


@pytest.fixture(scope="module")
def payloads(records) -> list[bytes]:
    return [encode_rubin(record, "10.0") for record in records]


def _points(row: dict) -> dict[int, tuple]:
    """source id -> (mjd_tai, band code, flux_njy, flux_err_njy, is_detection), straight from the parquet."""
    assert not row["prvDiaForcedSources"]  # none in this sample
    points = {}
    for p in [row["diaSource"], *(row["prvDiaSources"] or [])]:
        points.setdefault(p["diaSourceId"], (p["midpointMjdTai"], BAND_CODE["lsst-" + p["band"]],
                                             np.float32(p["psfFlux"]), np.float32(p["psfFluxErr"]), True))
    return points


def _decoded_points(alert) -> dict[int, tuple]:
    lc = alert.light_curve
    return {int(s): (float(t), int(b), f, e, bool(d)) for s, t, b, f, e, d in zip(
        lc.source_id, lc.mjd_tai, lc.band, lc.flux_njy, lc.flux_err_njy, lc.is_detection)}


def _assert_same_alert(a, b):
    assert (a.survey, a.schema, a.alert_id, a.source_id, a.object_id, a.ra_deg, a.dec_deg) == (
        b.survey, b.schema, b.alert_id, b.source_id, b.object_id, b.ra_deg, b.dec_deg)
    for field in a.light_curve.FIELDS:
        np.testing.assert_array_equal(getattr(a.light_curve, field), getattr(b.light_curve, field))


def test_wire_format_header_encodes_the_version(payloads):
    assert payloads[0][:5] == b"\x00\x00\x00\x03\xe8"  # magic 0, schema id 1000
    assert schema_id("7.1") == 701 and schema_id("11.1") == 1101


def test_supported_versions_are_those_shipped_from_7_0():
    versions = rubin_versions()
    assert versions[0] == "7.0" and "10.0" in versions
    assert all(int(v.split(".")[0]) >= 7 for v in versions)


def test_real_alerts_decode_to_the_parquet_points(rows, payloads):
    n_points = 0
    for row, payload in zip(rows, payloads):
        alert = decode_rubin(payload)
        source = row["diaSource"]
        assert (alert.survey, alert.schema) == ("rubin", "lsst.v10_0.alert")
        assert alert.alert_id == row["diaSourceId"] and alert.source_id == source["diaSourceId"]
        assert (alert.ra_deg, alert.dec_deg) == (source["ra"], source["dec"])
        expected = _points(row)
        assert _decoded_points(alert) == expected
        assert np.all(np.diff(alert.light_curve.mjd_tai) >= 0)
        n_points += len(expected)
    assert n_points == 65


def test_solar_system_sources_take_the_ss_object_id(rows, payloads):
    # In these LSSTCam alerts a solar-system source has diaObjectId 0, not null.
    sso = [(row, payload) for row, payload in zip(rows, payloads) if row["diaSource"]["diaObjectId"] == 0]
    assert len(sso) == 3
    for row, payload in sso:
        assert decode_rubin(payload).object_id == "ss" + str(row["diaSource"]["ssObjectId"])
    row, payload = next((r, p) for r, p in zip(rows, payloads) if r["diaSource"]["diaObjectId"])
    assert decode_rubin(payload).object_id == str(row["diaSource"]["diaObjectId"])


def test_no_object_id_is_a_bad_packet(records):
    record = {**records[0], "diaSource": {**records[0]["diaSource"], "diaObjectId": None, "ssObjectId": None}}
    with pytest.raises(BadPacket, match=r"diaSource.diaObjectId and diaSource.ssObjectId are both null"):
        decode_rubin(encode_rubin(record, "10.0", fill_defaults=True))


def test_schemaless_payload_with_a_configured_version(records, payloads):
    decode = get_decoder("rubin", version="10.0")
    for record, payload in zip(records, payloads):
        schemaless = encode_rubin(record, "10.0", wire_format=False, fill_defaults=True)
        assert schemaless == payload[5:]
        _assert_same_alert(decode(schemaless), decode_rubin(payload))


def test_repeated_previous_source_is_deduplicated(rows, records):
    i = next(i for i, row in enumerate(rows) if len(row["prvDiaSources"] or []) == 16)
    record = records[i]
    repeated = {**record, "prvDiaSources": record["prvDiaSources"] + record["prvDiaSources"][-1:]
                + [record["diaSource"]]}
    alert = decode_rubin(encode_rubin(repeated, "10.0", fill_defaults=True))
    assert len(alert.light_curve) == 17
    assert _decoded_points(alert) == _points(rows[i])


def test_forced_photometry_on_a_detection_visit_is_dropped(records):
    record = records[0]
    source = record["diaSource"]
    forced = [{"diaForcedSourceId": 11, "diaObjectId": 1, "visit": source["visit"], "detector": 1,
               "midpointMjdTai": source["midpointMjdTai"], "band": "i", "psfFlux": 5.0, "psfFluxErr": 1.0},
              {"diaForcedSourceId": 12, "diaObjectId": 1, "visit": source["visit"] - 1, "detector": 1,
               "midpointMjdTai": source["midpointMjdTai"] - 1.0, "band": "r", "psfFlux": -3.0,
               "psfFluxErr": 2.0}]
    lc = decode_rubin(encode_rubin({**record, "prvDiaForcedSources": forced}, "10.0", fill_defaults=True)
                      ).light_curve
    assert lc.source_id.tolist() == [12, source["diaSourceId"]]
    assert lc.is_detection.tolist() == [False, True]
    assert lc.band[0] == BAND_CODE["lsst-r"] and lc.flux_njy[0] == -3.0 and lc.flux_err_njy[0] == 2.0


@pytest.mark.parametrize("version", rubin_versions())
def test_every_version_round_trips(version):
    top = {f["name"] for f in rubin_schema(version)["fields"]}
    source = {"diaSourceId": 42, "diaObjectId": 7, "visit": 3, "midpointMjdTai": 60500.25, "band": "g",
              "psfFlux": 123.5, "psfFluxErr": 4.25, "ra": 10.0, "dec": -5.0}
    record = {"alertId" if "alertId" in top else "diaSourceId": 99 if "alertId" in top else 42,
              "diaSource": source}
    alert = decode_rubin(encode_rubin(record, version, fill_defaults=True))
    assert alert.schema == f"lsst.v{version.replace('.', '_')}.alert"
    assert (alert.alert_id, alert.source_id, alert.object_id) == (99 if "alertId" in top else 42, 42, "7")
    lc = alert.light_curve
    assert (lc.mjd_tai.tolist(), lc.band.tolist(), lc.flux_njy.tolist(), lc.flux_err_njy.tolist()) == (
        [60500.25], [BAND_CODE["lsst-g"]], [123.5], [4.25])


def test_unknown_schema_id_is_a_bad_packet(payloads):
    payload = b"\x00" + (4242).to_bytes(4, "big") + payloads[0][5:]
    with pytest.raises(BadPacket, match=r"^unknown Rubin schema id 4242 \(known: 700, 701, .*1000"):
        decode_rubin(payload)


@pytest.mark.parametrize("cut", [1, 100, 2000])
def test_truncated_message_is_a_bad_packet(payloads, cut):
    with pytest.raises(BadPacket, match=r"^truncated or corrupt lsst.v10_0.alert record \(\d+ byte\(s\)\)"):
        decode_rubin(payloads[0][:-cut])


@pytest.mark.parametrize("payload, message", [
    (b"", r"^empty message"),
    (b"\x00\x00\x03", r"^truncated Confluent wire-format header: 3 byte\(s\), need 5"),
    (b"\x01\x00\x00\x03\xe8\x00", r"^wrong magic byte 0x01"),
])
def test_bad_header_is_a_bad_packet(payload, message):
    with pytest.raises(BadPacket, match=message):
        decode_rubin(payload)


def test_trailing_bytes_are_a_bad_packet(payloads):
    with pytest.raises(BadPacket, match=r"^3 unread byte\(s\) after the lsst.v10_0.alert record"):
        decode_rubin(payloads[0] + b"abc")


@pytest.mark.parametrize("field, value, message", [
    ("psfFlux", math.nan, r"^prvDiaSources\[1\].psfFlux is NaN"),
    ("psfFlux", None, r"^prvDiaSources\[1\].psfFlux is null"),
    ("psfFluxErr", 0.0, r"^prvDiaSources\[1\].psfFluxErr is not positive \(0.0\)"),
    ("psfFluxErr", math.inf, r"^prvDiaSources\[1\].psfFluxErr is inf"),
    ("midpointMjdTai", math.nan, r"^prvDiaSources\[1\].midpointMjdTai is NaN"),
    ("band", "q", r"^prvDiaSources\[1\].band is 'q', expected one of u, g, r, i, z, y"),
    ("band", None, r"^prvDiaSources\[1\].band is null"),
])
def test_bad_point_is_a_bad_packet_naming_the_field(rows, records, field, value, message):
    i = next(i for i, row in enumerate(rows) if len(row["prvDiaSources"] or []) >= 2)
    prv = [dict(p) for p in records[i]["prvDiaSources"]]
    prv[1][field] = value
    with pytest.raises(BadPacket, match=message):
        decode_rubin(encode_rubin({**records[i], "prvDiaSources": prv}, "10.0", fill_defaults=True))


def test_auto_detects_the_wire_format(payloads):
    _assert_same_alert(decode_auto(payloads[0]), decode_rubin(payloads[0]))


def test_get_decoder_rejects_bad_configuration():
    with pytest.raises(ConfigError, match="unknown alert format 'kafka'"):
        get_decoder("kafka")
    with pytest.raises(ConfigError, match="alert format 'ztf'"):
        get_decoder("ztf", version="10.0")
    with pytest.raises(ConfigError, match=r"unknown Rubin schema version '12.3' \(known: 7.0, "):
        get_decoder("rubin", version="12.3")
    with pytest.raises(ConfigError, match="not of the form 'M.m'"):
        get_decoder("rubin", version="v10")


def test_parquet_without_a_version_column_needs_the_version(tmp_path):
    path = tmp_path / "alerts.parquet"
    pq.write_table(pq.read_table(PARQUET).drop_columns(["lsst_schema_version"]).slice(0, 2), path)
    with pytest.raises(ConfigError, match="no lsst_schema_version column"):
        rubin_records_from_parquet(path)
    records, version = rubin_records_from_parquet(path, "10.0")
    assert version == "10.0" and len(records) == 2


def test_implausible_history_point_is_dropped_and_counted(rows, records):
    """A previous detection at MJD -1e300 is finite, but would overflow dt_days and make every score NaN."""
    i = next(i for i, row in enumerate(rows) if len(row["prvDiaSources"] or []) >= 2)
    prv = [dict(p) for p in records[i]["prvDiaSources"]]
    prv[1]["midpointMjdTai"] = -1e300
    alert = decode_rubin(encode_rubin({**records[i], "prvDiaSources": prv}, "10.0", fill_defaults=True))
    whole = decode_rubin(encode_rubin(records[i], "10.0", fill_defaults=True))
    assert alert.dropped_points == 1 and whole.dropped_points == 0
    assert set(alert.light_curve.source_id) == set(whole.light_curve.source_id) - {prv[1]["diaSourceId"]}
    assert alert.light_curve.mjd_tai.min() > 50000


@pytest.mark.parametrize("field, value, message", [
    ("midpointMjdTai", -1e300, r"^diaSource.midpointMjdTai gives MJD TAI -1e\+300, outside the survey era"),
    ("psfFlux", 1e30, r"^diaSource.psfFlux gives .* nJy, beyond"),
    ("ra", 720.0, r"^diaSource.ra is 720.0, outside \[0, 360\)"),
    ("dec", 200.0, r"^diaSource.dec is 200.0, outside \[-90, 90\]"),
])
def test_implausible_alert_is_a_bad_packet_naming_the_field(records, field, value, message):
    record = {**records[0], "diaSource": {**records[0]["diaSource"], field: value}}
    with pytest.raises(BadPacket, match=message):
        decode_rubin(encode_rubin(record, "10.0", fill_defaults=True))

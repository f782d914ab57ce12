"""ELAsTiCC decoder: build an elasticc.v0_9_1 alert, encode it, decode it, compare."""
import math

import numpy as np
import pytest

from models.bands import BAND_CODE
from stream.decode import decode_elasticc, elasticc_schema, encode_elasticc, get_decoder
from stream.errors import BadPacket


def _source(source_id: int, mjd_tai: float, band: str, flux_njy: float, flux_err_njy: float) -> dict:
    return {"diaSourceId": source_id, "diaObjectId": 1234, "midPointTai": mjd_tai, "filterName": band,
            "ra": 150.25, "decl": 2.5, "psFlux": flux_njy, "psFluxErr": flux_err_njy, "snr": 10.0}


def _forced(source_id: int, mjd_tai: float, band: str, flux_njy: float, flux_err_njy: float) -> dict:
    return {"diaForcedSourceId": source_id, "diaObjectId": 1234, "midPointTai": mjd_tai, "filterName": band,
            "psFlux": flux_njy, "psFluxErr": flux_err_njy}


@pytest.fixture
def record() -> dict:
    return {
        "alertId": 77,
        "diaSource": _source(103, 60010.5, "Y", 950.0, 40.0),
        "prvDiaSources": [_source(101, 60001.25, "g", 500.0, 25.0), _source(102, 60005.0, "r", 700.0, 30.0)],
        "prvDiaForcedSources": [
            _forced(201, 59990.0, "u", -12.5, 20.0),
            _forced(202, 60001.25, "g", 480.0, 25.0),  # the epoch of detection 101: dropped
            _forced(203, 60001.25, "r", 15.0, 22.0),  # same time, other band: kept
        ],
        "diaObject": {"diaObjectId": 1234, "simVersion": "test", "ra": 150.25, "decl": 2.5},
    }


def test_round_trip(record):
    alert = decode_elasticc(encode_elasticc(record, fill_defaults=True))
    assert (alert.survey, alert.schema) == ("elasticc", "elasticc.v0_9_1.alert")
    assert (alert.alert_id, alert.source_id, alert.object_id) == (77, 103, "1234")
    assert (alert.ra_deg, alert.dec_deg) == (150.25, 2.5)
    lc = alert.light_curve
    assert lc.source_id.tolist() == [201, 101, 203, 102, 103]
    assert lc.mjd_tai.tolist() == [59990.0, 60001.25, 60001.25, 60005.0, 60010.5]
    assert lc.band.tolist() == [BAND_CODE[b] for b in ("lsst-u", "lsst-g", "lsst-r", "lsst-r", "lsst-y")]
    assert lc.flux_njy.tolist() == [-12.5, 500.0, 15.0, 700.0, 950.0]
    assert lc.flux_err_njy.tolist() == [20.0, 25.0, 22.0, 30.0, 40.0]
    assert lc.is_detection.tolist() == [False, True, False, True, True]


def test_schema_loads_in_dependency_order():
    schema = elasticc_schema()
    assert schema["name"] == "elasticc.v0_9_1.alert"
    assert "elasticc.v0_9_1.diaForcedSource" in schema["__named_schemas"]


def test_wire_format(record):
    payload = encode_elasticc(record, schema_id=5, fill_defaults=True)
    assert payload[:5] == b"\x00\x00\x00\x00\x05"
    alert = get_decoder("elasticc", wire_format=True)(payload)
    np.testing.assert_array_equal(alert.light_curve.source_id, [201, 101, 203, 102, 103])


def test_object_id_falls_back_to_the_dia_object(record):
    record["diaSource"]["diaObjectId"] = None
    assert decode_elasticc(encode_elasticc(record, fill_defaults=True)).object_id == "1234"
    record["diaObject"] = None
    with pytest.raises(BadPacket, match="diaSource.diaObjectId and diaObject are both null"):
        decode_elasticc(encode_elasticc(record))


def test_repeated_source_is_deduplicated(record):
    record["prvDiaSources"].append(dict(record["prvDiaSources"][-1]))
    assert len(decode_elasticc(encode_elasticc(record, fill_defaults=True)).light_curve) == 5


@pytest.mark.parametrize("where, field, value, message", [
    ("prvDiaForcedSources", "psFlux", math.nan, r"^prvDiaForcedSources\[0\].psFlux is NaN"),
    ("prvDiaForcedSources", "psFluxErr", -1.0, r"^prvDiaForcedSources\[0\].psFluxErr is not positive"),
    ("prvDiaSources", "midPointTai", -math.inf, r"^prvDiaSources\[0\].midPointTai is inf"),
    ("prvDiaSources", "filterName", "V", r"^prvDiaSources\[0\].filterName is 'V', expected one of u, g"),
])
def test_bad_point_is_a_bad_packet_naming_the_field(record, where, field, value, message):
    record[where][0][field] = value
    with pytest.raises(BadPacket, match=message):
        decode_elasticc(encode_elasticc(record, fill_defaults=True))


def test_truncated_payload_is_a_bad_packet(record):
    payload = encode_elasticc(record, fill_defaults=True)
    with pytest.raises(BadPacket, match=r"^truncated or corrupt elasticc.v0_9_1.alert record"):
        decode_elasticc(payload[:-7])


def test_implausible_history_point_is_dropped_and_the_alert_itself_is_a_bad_packet(record):
    record["prvDiaSources"][0]["midPointTai"] = 1e9
    alert = decode_elasticc(encode_elasticc(record, fill_defaults=True))
    assert alert.dropped_points == 1 and alert.light_curve.mjd_tai.max() < 1e5
    record["diaSource"]["decl"] = 200.0
    with pytest.raises(BadPacket, match=r"^diaSource.decl is 200.0, outside"):
        decode_elasticc(encode_elasticc(record, fill_defaults=True))


def test_the_host_galaxy_becomes_context_and_snana_sentinels_are_missing(record):
    from models.context import CONTEXT_INDEX

    def host(alert):
        return [alert.context[CONTEXT_INDEX[f]] for f in ("host_separation_arcsec", "host_redshift", "host_mag_r_ab")]

    record["diaObject"] |= {"hostgal_snsep": 1.25, "hostgal_zspec": 0.0213, "hostgal_zphot": 0.3,
                            "hostgal_mag_r": 17.5}
    assert host(decode_elasticc(encode_elasticc(record, fill_defaults=True))) == [1.25, pytest.approx(0.0213), 17.5]
    record["diaObject"] |= {"hostgal_zspec": -9.0}  # no spectrum: the photometric redshift
    assert host(decode_elasticc(encode_elasticc(record, fill_defaults=True)))[1] == pytest.approx(0.3)
    record["diaObject"] |= {"hostgal_snsep": -9.0, "hostgal_zphot": -9.0, "hostgal_mag_r": 999.0}  # hostless
    assert all(math.isnan(v) for v in host(decode_elasticc(encode_elasticc(record, fill_defaults=True))))

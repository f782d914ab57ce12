"""Alert context: what the ZTF decoder reads beyond photometry, and how absurd values are handled."""
import copy

import numpy as np
import pytest
from astropy.time import Time
from test_decode_ztf import ZTF17AAACXXF, ZTF17AAAJNNN, _packet, _read

from models.context import CONTEXT_FIELDS, CONTEXT_INDEX, N_CONTEXT, context_vector, valid_context
from stream.decode import decode_ztf
from stream.decode.rubin import rubin_context


def field(alert, name):
    return alert.context[CONTEXT_INDEX[name]]


@pytest.mark.parametrize("path", [ZTF17AAACXXF, ZTF17AAAJNNN])
def test_ztf_context_is_read_from_the_candidate(path):
    schema, record = _read(path)
    candidate = record["candidate"]
    alert = decode_ztf(path.read_bytes())
    assert alert.context.shape == (N_CONTEXT,)
    assert field(alert, "real_bogus") == pytest.approx(candidate.get("drb") or candidate["rb"])
    assert field(alert, "star_score") == pytest.approx(candidate["sgscore1"])
    assert field(alert, "star_distance_arcsec") == pytest.approx(candidate["distpsnr1"])
    assert field(alert, "n_detections_history") == candidate["ndethist"]
    start = Time(candidate["jdstarthist"], format="jd", scale="utc").tai.mjd
    assert field(alert, "first_detection_mjd_tai") == pytest.approx(start, abs=1e-9)
    assert field(alert, "ref_mag_ab") == pytest.approx(candidate["magnr"])


def test_ztf_none_nearby_is_inf_and_missing_fields_are_nan():
    schema, record = _read(ZTF17AAAJNNN)
    record = copy.deepcopy(record)
    record["candidate"].update(ssdistnr=-999.0, sgscore1=-999.0, drb=None, rb=None, jdstarthist=None)
    alert = decode_ztf(_packet(schema, record))
    assert field(alert, "ss_distance_arcsec") == np.inf  # no known solar-system object nearby
    assert np.isnan(field(alert, "star_score")) and np.isnan(field(alert, "real_bogus"))
    assert np.isnan(field(alert, "first_detection_mjd_tai"))


def test_absurd_context_values_decode_and_are_not_usable():
    schema, record = _read(ZTF17AAAJNNN)
    record = copy.deepcopy(record)
    record["candidate"].update(distpsnr1=-3.0, sgscore1=float("nan"), drb=7.5, jdstarthist=1e300)
    alert = decode_ztf(_packet(schema, record))  # not a dead letter: the photometry is fine
    usable, absurd = valid_context(alert.context[None])
    for name in ("star_distance_arcsec", "real_bogus"):
        assert absurd[0, CONTEXT_INDEX[name]] and not usable[0, CONTEXT_INDEX[name]]
    for name in ("star_score", "first_detection_mjd_tai"):  # NaN, or outside JD_RANGE: missing
        assert not usable[0, CONTEXT_INDEX[name]] and not absurd[0, CONTEXT_INDEX[name]]


def test_rubin_context_says_solar_system_or_not():
    assert rubin_context(True)[CONTEXT_INDEX["ss_distance_arcsec"]] == 0.0
    assert rubin_context(False)[CONTEXT_INDEX["ss_distance_arcsec"]] == np.inf
    assert np.isnan(np.delete(rubin_context(True), CONTEXT_INDEX["ss_distance_arcsec"])).all()


def test_context_vector_names_unknown_fields():
    with pytest.raises(ValueError, match="unknown context field"):
        context_vector(redshift=0.1)
    assert len(CONTEXT_FIELDS) == N_CONTEXT

"""The vectorised JD (UTC) -> MJD (TAI) conversion says what astropy says, leap seconds included."""
import warnings

import erfa
import numpy as np
import pytest
from astropy.time import Time

from stream.decode.fast import tai

MICROSECOND_DAYS = 1e-6 / 86400


def astropy_mjd_tai(jd: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", erfa.ErfaWarning)  # "dubious year" past the table
        return Time(jd, format="jd", scale="utc").tai.mjd


def assert_agrees(jd: np.ndarray) -> None:
    expected, got = astropy_mjd_tai(jd), tai.jd_utc_to_mjd_tai(jd)
    assert got.dtype == np.float64 and got.shape == jd.shape
    assert np.abs(got - expected).max() <= MICROSECOND_DAYS  # the aim
    np.testing.assert_array_equal(got, expected)  # and in fact the same float64s


def leap_days() -> np.ndarray:
    """JD at 0h UTC of each day that ends in a leap second, since 1972."""
    start_mjd, tai_utc = tai.leap_second_table()
    return start_mjd[1:][np.diff(tai_utc) != 0] - 1 + tai.JD_OF_MJD_ZERO


def test_2018_to_2030_agrees_with_astropy():
    rng = np.random.default_rng(16)
    first, last = 2458119.5, 2462867.5  # 2018-01-01, 2031-01-01 (0h UTC)
    jd = rng.uniform(first, last, 100_000)
    days = np.arange(np.floor(first) + 0.5, last)  # every midnight, and the instants around it
    assert_agrees(np.concatenate([jd, days, days + 2**-31, days - 2**-31, days + 0.5]))


def test_every_leap_second_since_1972_agrees_with_astropy():
    days = leap_days()
    assert len(days) == 27  # 1972-06-30 .. 2016-12-31
    rng = np.random.default_rng(1972)
    jd = (days[:, None] + np.concatenate([[0.0, 0.5, 1.0, 1 - 2**-31, 1 + 2**-31], rng.uniform(0, 1, 500)])).ravel()
    assert_agrees(jd)


def test_a_leap_second_inside_2018_2030_agrees_with_astropy(monkeypatch):
    """A leap second announced later (here, a made-up one at the end of 2026-06-30) is taken from ERFA's table."""
    astropy_mjd_tai(np.array([2459000.5]))  # astropy has made its one update of the table in this process
    real = erfa.leap_seconds.get()
    made_up = np.concatenate([real, np.array([(2026, 7, real["tai_utc"][-1] + 1)], dtype=real.dtype)])
    monkeypatch.setattr("astropy.time.update_leap_seconds", lambda: None)
    try:
        erfa.leap_seconds.set(made_up)
        tai.leap_second_table.cache_clear()
        day = 2461221.5  # 2026-06-30, 0h UTC
        jd = day + np.concatenate([np.linspace(0, 1, 1001), [1 - 2**-31, 1 + 2**-31, 1.5]])
        assert_agrees(jd)
        before, after = tai.jd_utc_to_mjd_tai(np.array([day, day + 1.5])) - np.array([day, day + 1.5]) + 2400000.5
        assert after * 86400 == pytest.approx(before * 86400 + 1, abs=1e-5)
    finally:
        erfa.leap_seconds.set(real)
        tai.leap_second_table.cache_clear()


def test_empty_and_scalar_shapes():
    assert tai.jd_utc_to_mjd_tai(np.zeros(0)).shape == (0,)
    assert tai.jd_utc_to_mjd_tai(np.float64(2459000.5)).shape == ()

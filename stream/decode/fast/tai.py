"""JD (UTC) to MJD (TAI) for whole arrays: astropy's arithmetic, step for step, in numpy.

``Time(jd, format="jd", scale="utc").tai.mjd`` builds a `Time` and calls ERFA
per call (tens of microseconds even for one value); `jd_utc_to_mjd_tai` does
the same float64 operations as astropy (``day_frac``, ERFA's ``utctai``,
``day_frac`` again, then ``.mjd``) on arrays, with the leap-second table as
numpy arrays, so it gives the same numbers (the tests compare with astropy over
2018-2030 and across every leap second since 1972). A UTC day that ends in a
leap second is 86401 s long, and ERFA stretches its fraction of day to match:
so does this. Valid from 1972 on (whole leap seconds only, no pre-1972 drift).

>>> float(jd_utc_to_mjd_tai(np.array([2459000.5]))[0]) * 86400 % 86400
37.0
"""
import functools

import erfa
import numpy as np

SECONDS_PER_DAY = 86400.0
JD_OF_MJD_ZERO = erfa.DJM0  # 2400000.5
FIRST_LEAP_SECOND_YEAR = 1972  # TAI-UTC in whole seconds from here on


@functools.cache
def leap_second_table() -> tuple[np.ndarray, np.ndarray]:
    """(MJD (UTC) at which each TAI-UTC value starts, that value in s), from 1972 on.

    The table astropy converts with: ERFA's, after astropy has brought it up to
    date (`astropy.time.update_leap_seconds`, as a first UTC conversion does).
    """
    from astropy.time import update_leap_seconds

    update_leap_seconds()
    table = erfa.leap_seconds.get()
    table = table[table["year"] >= FIRST_LEAP_SECOND_YEAR]
    _, start_mjd = erfa.cal2jd(table["year"], table["month"], np.ones(len(table), dtype=np.int32))
    return np.asarray(start_mjd, dtype=np.float64), np.asarray(table["tai_utc"], dtype=np.float64)


def jd_utc_to_mjd_tai(jd_utc: np.ndarray) -> np.ndarray:
    """MJD (TAI) of each JD (UTC), (N,) float64 to (N,) float64, as astropy gives it.

    For dates past the table, the last TAI-UTC holds (astropy's "dubious year" case).
    """
    jd = np.asarray(jd_utc, dtype=np.float64)
    jd1, jd2 = _day_frac(jd, np.zeros_like(jd))  # Time(jd, format="jd")
    mjd_utc = jd - JD_OF_MJD_ZERO  # exact: jd's last bit is far coarser than this difference's
    day_mjd = np.floor(mjd_utc)  # the UTC date, MJD at 0h
    fraction = mjd_utc - day_mjd  # exact; what eraJd2cal computes from (jd1, jd2)
    start_mjd, tai_utc_s = leap_second_table()
    dat0 = tai_utc_s[np.maximum(np.searchsorted(start_mjd, day_mjd, side="right") - 1, 0)]
    dat24 = tai_utc_s[np.maximum(np.searchsorted(start_mjd, day_mjd + 1, side="right") - 1, 0)]
    # eraUtctai: a leap second at the day's end stretches the day; (jd1, a2) is TAI
    a2 = (JD_OF_MJD_ZERO - jd1) + day_mjd
    a2 += fraction * ((SECONDS_PER_DAY + (dat24 - dat0)) / SECONDS_PER_DAY) + dat0 / SECONDS_PER_DAY
    tai1, tai2 = _day_frac(jd1, a2)
    return (tai1 - JD_OF_MJD_ZERO) + tai2  # TimeMJD.to_value


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """astropy.time.utils.two_sum: a + b and its exact rounding error."""
    x = a + b
    eb = x - a
    ea = x - eb
    eb = b - eb
    ea = a - ea
    return x, ea + eb


def _day_frac(val1: np.ndarray, val2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """astropy.time.utils.day_frac (no factor or divisor): val1 + val2 as an integer day and a fraction."""
    sum12, err12 = _two_sum(val1, val2)
    day = np.round(sum12)
    frac, check = _two_sum(sum12 - day, err12)
    excess = np.where(frac * np.sign(check) != 0.5, np.round(frac), np.round(frac + 2 * check))
    day += excess
    frac = sum12 - day
    frac += err12
    return day, frac

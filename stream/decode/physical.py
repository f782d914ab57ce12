"""Physical plausibility of decoded photometry: times in the survey era, fluxes and errors in range,
positions on the sky.

Finite is not enough: a previous detection at MJD -1e300 is finite, but its ``dt_days`` overflows
float32 to inf and every score of the object turns NaN (and stays so while Redis keeps the point).
Every decoder ends with `checked_curve`: an implausible point of the alert's own (triggering)
measurement makes the packet a dead letter; one in its history is dropped and counted
(``DecodedAlert.dropped_points``). Band codes are already checked by the decoders (known bands only).

>>> import numpy as np
>>> implausible(np.array([60000.5, -1e300]), np.array([100.0, 100.0]), np.array([10.0, 10.0])).tolist()
[False, True]
"""
import dataclasses

import numpy as np

from models.lightcurve import LightCurve
from stream.alert import DecodedAlert
from stream.errors import BadPacket

# 2017-01-01 .. 2040-01-01 (MJD TAI): ZTF's first alerts (2018) to past the end of Rubin's
# ten-year survey (2035), ELAsTiCC's simulated seasons (2023-2026) inside.
MJD_TAI_ERA = (57754.0, 66154.0)
# AB magnitude 1.4: no difference-image flux a survey measures is brighter (ZTF saturates at ~12.5 mag,
# Rubin at ~16 mag, i.e. 3.6e7 and 1.4e6 nJy).
MAX_ABS_FLUX_NJY = 1e12
MAX_FLUX_ERR_NJY = 1e12
RA_RANGE_DEG = (0.0, 360.0)  # [0, 360)
DEC_RANGE_DEG = (-90.0, 90.0)  # [-90, 90]


def implausible(mjd_tai: np.ndarray, flux_njy: np.ndarray, flux_err_njy: np.ndarray) -> np.ndarray:
    """(N,) bool: points outside the survey era, or with a flux or error out of range (NaN included)."""
    with np.errstate(invalid="ignore"):
        ok = ((mjd_tai >= MJD_TAI_ERA[0]) & (mjd_tai <= MJD_TAI_ERA[1])
              & (np.abs(flux_njy) <= MAX_ABS_FLUX_NJY) & (flux_err_njy > 0) & (flux_err_njy <= MAX_FLUX_ERR_NJY))
    return ~ok


def position_plausible(ra_deg, dec_deg):
    """True (per element) where ra is in [0, 360) and dec in [-90, 90] (degrees)."""
    return ((ra_deg >= RA_RANGE_DEG[0]) & (ra_deg < RA_RANGE_DEG[1])
            & (dec_deg >= DEC_RANGE_DEG[0]) & (dec_deg <= DEC_RANGE_DEG[1]))


def validated(alert: DecodedAlert, where: str, fields: dict[str, str]) -> DecodedAlert:
    """`alert` with a plausible position and light curve (`checked_curve`), else BadPacket."""
    check_position(alert.ra_deg, alert.dec_deg, where, fields)
    curve, dropped = checked_curve(alert.light_curve, alert.source_id, where, fields)
    return dataclasses.replace(alert, light_curve=curve, dropped_points=dropped) if dropped else alert


def check_position(ra_deg: float, dec_deg: float, where: str, fields: dict[str, str]) -> None:
    """BadPacket naming the field if the alert's position is off the sky."""
    if not RA_RANGE_DEG[0] <= ra_deg < RA_RANGE_DEG[1]:
        raise BadPacket(f"{where}.{fields['ra_deg']} is {ra_deg!r}, outside [0, 360) degrees")
    if not DEC_RANGE_DEG[0] <= dec_deg <= DEC_RANGE_DEG[1]:
        raise BadPacket(f"{where}.{fields['dec_deg']} is {dec_deg!r}, outside [-90, 90] degrees")


def checked_curve(curve: LightCurve, trigger_source_id: int, where: str,
                  fields: dict[str, str]) -> tuple[LightCurve, int]:
    """`curve` without its implausible points, and how many were dropped.

    Parameters
    ----------
    curve : LightCurve
        The alert's photometry, as decoded.
    trigger_source_id : int
        Source id of the alert's own detection: if that point is implausible, BadPacket.
    where : str
        Name of the triggering record in the packet (``"diaSource"``, ``"candidate"``).
    fields : dict of str to str
        The packet's field for ``mjd_tai``, ``flux_njy``, ``flux_err_njy``, ``ra_deg`` and ``dec_deg``,
        for the message.
    """
    bad = implausible(curve.mjd_tai, curve.flux_njy, curve.flux_err_njy)
    if not bad.any():
        return curve, 0
    own = bad & curve.is_detection & (curve.source_id == trigger_source_id)
    if own.any():
        raise BadPacket(_describe(curve, int(np.argmax(own)), where, fields))
    keep = ~bad
    return LightCurve(*(getattr(curve, name)[keep] for name in LightCurve.FIELDS)), int(bad.sum())


def _describe(curve: LightCurve, i: int, where: str, fields: dict[str, str]) -> str:
    mjd, flux, err = float(curve.mjd_tai[i]), float(curve.flux_njy[i]), float(curve.flux_err_njy[i])
    if not MJD_TAI_ERA[0] <= mjd <= MJD_TAI_ERA[1]:
        return (f"{where}.{fields['mjd_tai']} gives MJD TAI {mjd!r}, outside the survey era "
                f"{MJD_TAI_ERA[0]:g}..{MJD_TAI_ERA[1]:g}")
    if not abs(flux) <= MAX_ABS_FLUX_NJY:
        return f"{where}.{fields['flux_njy']} gives {flux!r} nJy, beyond ±{MAX_ABS_FLUX_NJY:g} nJy"
    return f"{where}.{fields['flux_err_njy']} gives an error of {err!r} nJy, outside (0, {MAX_FLUX_ERR_NJY:g}] nJy"

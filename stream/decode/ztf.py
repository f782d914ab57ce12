"""ZTF alerts: one Avro object container file per message, writer schema embedded.

Photometry is converted at decode (DESIGN.md, Photometry): difference-image
AB magnitudes to nJy with zero point 31.4 (the AB magnitude of 1 nJy), the
sign from ``isdiffpos``, and ``jd`` (UTC) to MJD TAI with astropy.
"""
import io
import math
import warnings

import fastavro
import numpy as np
from astropy.time import Time
from erfa import ErfaWarning

from models.bands import BAND_CODE
from models.context import CONTEXT_INDEX, N_CONTEXT
from stream.alert import DecodedAlert
from stream.decode._avro import DECODE_ERRORS, raising_bad_packet
from stream.decode._points import Points, finite_float, light_curve, required
from stream.decode.physical import validated
from stream.errors import BadPacket

ZTF_FIELDS = {"mjd_tai": "jd", "flux_njy": "magpsf", "flux_err_njy": "sigmapsf",
              "ra_deg": "ra", "dec_deg": "dec"}  # named in validation errors

CONTAINER_MAGIC = b"Obj\x01"
ZERO_POINT_NJY_MAG = 31.4  # AB magnitude of a 1 nJy source
UPPER_LIMIT_SNR = 5.0  # diffmaglim is a 5-sigma limit
FID_CODES = {1: BAND_CODE["ztf-g"], 2: BAND_CODE["ztf-r"], 3: BAND_CODE["ztf-i"]}
DIFF_SIGN = {"t": 1.0, "1": 1.0, "f": -1.0, "0": -1.0}
# Plausible exposure times (JD 2000-01-01 to 2100-01-01); outside it the
# derived upper-limit ids could overflow and ERFA's UTC tables do not apply.
JD_RANGE = (2451544.5, 2488069.5)
JD_MINUS_MJD = 2400000.5
SECONDS_PER_DAY = 86400.0
NONE_NEARBY = -999.0  # ZTF's value of a cross-match field when no source was found
# Candidate fields of the context (`ztf_contexts`), besides jdstarthist.
CONTEXT_SOURCES = ("drb", "rb", "sgscore1", "distpsnr1", "ndethist", "ssdistnr", "neargaia", "distnr", "magnr")


@raising_bad_packet
def decode_ztf(payload: bytes) -> DecodedAlert:
    """Decode one ZTF alert (schema 3.x or later, writer schema read from the container).

    Points: ``candidate`` and the ``prv_candidates`` with a ``magpsf`` are
    detections (id ``candid``): flux in nJy is ``10**((31.4 - magpsf) / 2.5)``,
    negated when ``isdiffpos`` is ``'f'`` or ``'0'``, with error
    ``|flux| * ln(10) / 2.5 * sigmapsf``. ``prv_candidates`` with null
    ``magpsf`` are upper limits, kept as non-detections with flux 0 and error
    ``F(diffmaglim) / 5`` (``diffmaglim`` is a 5-sigma limit); their id is
    ``-(round(seconds of MJD at jd) * 10 + fid)``, negative so it never meets a
    candid and the same for one exposure in every packet that carries it.
    ``prv_candidates`` may be null.

    Times: ``jd`` is the exposure *start* (UTC, JD), converted to MJD TAI in one
    vectorised astropy call per alert; no half-exposure shift is applied.

    Parameters
    ----------
    payload : bytes
        An Avro object container file holding exactly one ``ztf.alert``.

    Returns
    -------
    DecodedAlert
        ``survey="ztf"``, ``schema`` e.g. ``"ztf 3.3"``, ``alert_id`` = ``candid``,
        ``object_id`` = ``objectId``, position from ``candidate.ra``/``dec``.

    Raises
    ------
    BadPacket
        For anything undecodable, naming the problem, e.g. ``"not an Avro
        object container file (starts with b'...')"``, ``"truncated or corrupt
        Avro container file (...)"`` or
        ``"prv_candidates[4].sigmapsf is not positive (0.0)"``.
    """
    if payload[:4] != CONTAINER_MAGIC:
        raise BadPacket(f"not an Avro object container file (starts with {bytes(payload[:4])!r})")
    try:
        alerts = list(fastavro.reader(io.BytesIO(payload)))
    except DECODE_ERRORS as err:
        raise BadPacket(f"truncated or corrupt Avro container file ({len(payload)} byte(s)): "
                        f"{type(err).__name__}: {err}") from err
    if len(alerts) != 1:
        raise BadPacket(f"container holds {len(alerts)} records, expected one alert")
    alert = alerts[0]
    if not isinstance(alert, dict):
        raise BadPacket(f"container holds a {type(alert).__name__}, expected an alert record")
    return ztf_alert(alert)


def ztf_alert(alert: dict) -> DecodedAlert:
    """The `DecodedAlert` of a ``ztf.alert`` record, however it was read (fields beyond ZTF's, such as
    those a broker adds, are ignored); raises `BadPacket` as `decode_ztf`."""
    candidate = required(alert, "candidate", "alert")
    previous = Points.many("prv_candidates", alert.get("prv_candidates"))
    is_limit = [magpsf is None for magpsf in previous.column("magpsf", nullable=True)]
    detections = Points.one("candidate", candidate) + previous.select([not limit for limit in is_limit])
    limits = previous.select(is_limit)

    det_jd, lim_jd = _jd(detections), _jd(limits)
    start_jd = _optional_number(candidate, "jdstarthist")  # first detection ever, for the context
    known_start = bool(JD_RANGE[0] <= start_jd <= JD_RANGE[1])  # False for NaN
    with warnings.catch_warnings():  # "dubious year" for dates past the leap-second table
        warnings.simplefilter("ignore", ErfaWarning)
        mjd_tai = Time(np.concatenate([det_jd, lim_jd, [start_jd if known_start else det_jd[0]]]),
                       format="jd", scale="utc").tai.mjd
    start_mjd_tai, mjd_tai = (mjd_tai[-1] if known_start else np.nan), mjd_tai[:-1]
    lim_fid = limits.integers("fid")
    return validated(DecodedAlert(
        survey="ztf",
        schema=f"ztf {required(alert, 'schemavsn', 'alert')}",
        alert_id=required(alert, "candid", "alert"),
        source_id=required(candidate, "candid", "candidate"),
        object_id=str(required(alert, "objectId", "alert")),
        ra_deg=finite_float(candidate, "ra", "candidate"),
        dec_deg=finite_float(candidate, "dec", "candidate"),
        light_curve=light_curve(
            (detections.integers("candid"), mjd_tai[:len(det_jd)], detections.codes("fid", FID_CODES),
             *_detection_flux_njy(detections), np.ones(len(detections), dtype=bool)),
            (_upper_limit_ids(lim_jd, lim_fid), mjd_tai[len(det_jd):], limits.codes("fid", FID_CODES),
             np.zeros(len(limits)), flux_njy_of_mag(limits.numbers("diffmaglim")) / UPPER_LIMIT_SNR,
             np.zeros(len(limits), dtype=bool)),
        ),
        context=_context(candidate, start_mjd_tai),
    ), "candidate", ZTF_FIELDS)


def _optional_number(record: dict, field: str) -> float:
    """``record[field]`` as a float; NaN when absent, null or not a number."""
    value = record.get(field)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


def _context(candidate: dict, first_detection_mjd_tai: float) -> np.ndarray:
    """The alert context (`models.context`) of a ZTF candidate; absurd values pass through, to be masked."""
    fields = {name: np.array([_optional_number(candidate, name)]) for name in CONTEXT_SOURCES}
    return ztf_contexts(fields, np.array([first_detection_mjd_tai]))[0]


def ztf_contexts(fields: dict[str, np.ndarray], first_detection_mjd_tai: np.ndarray) -> np.ndarray:
    """(B, N_CONTEXT) alert contexts from the candidates' `CONTEXT_SOURCES` fields, each (B,) float64 (NaN
    where null or absent), and the first detections (MJD TAI, from jdstarthist).

    drb, else rb (null before schema 3.3); ZTF's -999 (nothing found nearby) is inf for a distance and
    NaN for the star score and the reference magnitude.
    """
    context = np.full((len(first_detection_mjd_tai), N_CONTEXT), np.nan)
    values = {
        "real_bogus": np.where(np.isnan(fields["drb"]), fields["rb"], fields["drb"]),
        "star_score": _none_nearby(fields["sgscore1"], np.nan),
        "star_distance_arcsec": _none_nearby(fields["distpsnr1"], np.inf),
        "first_detection_mjd_tai": first_detection_mjd_tai,
        "n_detections_history": fields["ndethist"],
        "ss_distance_arcsec": _none_nearby(fields["ssdistnr"], np.inf),
        "gaia_distance_arcsec": _none_nearby(fields["neargaia"], np.inf),
        "ref_distance_arcsec": _none_nearby(fields["distnr"], np.inf),
        "ref_mag_ab": _none_nearby(fields["magnr"], np.nan),
    }
    for name, value in values.items():
        context[:, CONTEXT_INDEX[name]] = value
    return context


def _none_nearby(values: np.ndarray, meaning: float) -> np.ndarray:
    """`values` with ZTF's -999 (no source found nearby) replaced by `meaning`."""
    return np.where(values == NONE_NEARBY, meaning, values)


def _jd(points: Points) -> np.ndarray:
    jd = points.numbers("jd")
    outside = (jd < JD_RANGE[0]) | (jd > JD_RANGE[1])
    if outside.any():
        i = int(np.argmax(outside))
        raise BadPacket(f"{points.names[i]}.jd is {jd[i]}, outside {JD_RANGE[0]}..{JD_RANGE[1]}")
    return jd


def _detection_flux_njy(points: Points) -> tuple[np.ndarray, np.ndarray]:
    """(flux_njy, flux_err_njy) of detections from magpsf, sigmapsf and isdiffpos."""
    return detection_flux_njy(points.codes("isdiffpos", DIFF_SIGN), points.numbers("magpsf"),
                              points.numbers("sigmapsf", positive=True))


def detection_flux_njy(sign: np.ndarray, magpsf: np.ndarray, sigmapsf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flux_njy, flux_err_njy) of detections: sign (+-1, from isdiffpos) times the flux of magpsf, and
    ``|flux| * ln(10) / 2.5 * sigmapsf``."""
    flux_njy = sign * flux_njy_of_mag(magpsf)
    return flux_njy, np.abs(flux_njy) * (math.log(10) / 2.5) * sigmapsf


def flux_njy_of_mag(mag: np.ndarray) -> np.ndarray:
    """AB magnitude to flux in nJy; inf where it overflows (caught when the curve is built)."""
    with np.errstate(over="ignore"):
        return 10.0 ** ((ZERO_POINT_NJY_MAG - mag) / 2.5)


def _upper_limit_ids(jd: np.ndarray, fid: np.ndarray) -> np.ndarray:
    """Negative ids for upper limits: exposure start in whole seconds of MJD, and the filter."""
    seconds = np.rint((jd - JD_MINUS_MJD) * SECONDS_PER_DAY).astype(np.int64)
    return -(seconds * 10 + fid)

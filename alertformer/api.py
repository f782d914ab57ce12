"""The Python API: score a light curve with the served model, units stated.

`score` takes fluxes, `score_magnitudes` AB magnitudes; both take a table (pandas
DataFrame, astropy Table or QTable, or a dict of columns) or the columns as keywords,
and score through `stream.score.Scorer`, the code the streaming service runs. `Model`
holds a loaded checkpoint; the two functions share one default `Model` of the shipped
model (loaded on first use).

Inputs are converted once, here, to the `models.lightcurve.LightCurve` the model takes
(flux in nJy, MJD in TAI, band codes). Columns (one object, N points):

==================  ===========================================================================
``mjd``             MJD (TAI; the 37 s to UTC do not matter to the model), or an astropy `Time`
``band``            band names: ``lsst-r``, ``ztf-g``, ``ztfg``, ``ZTF_g``, or ``g`` with ``survey=``
``flux``            difference flux: an astropy Quantity, or numbers with ``flux_unit=``
``flux_err``        its 1-sigma error, same unit
``mag``, ``mag_err`` (`score_magnitudes`) AB magnitude of the flux and its 1-sigma error
``is_detection``    optional, default all True; False for forced photometry
``source_id``       optional id of each point, unique (default: 0..N-1)
==================  ===========================================================================

Fluxes far outside what the survey detects (the detections' median 10 times fainter than
its 5-sigma depth, or 8.5 mag brighter, where it saturates) give a `FluxScaleWarning` naming the likely unit mistake: the same
curve scores very differently in µJy read as nJy.
"""
import functools
import math
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from models.bands import AB_ZERO_POINT_NJY_MAG, BAND_DEPTH_5SIGMA_MAG, BAND_NAMES, parse_band_names
from models.lightcurve import LightCurve
from models.taxonomy import CLASS_IDS, CLASS_NAMES

MAG_ERR_TO_RELATIVE_FLUX_ERR = math.log(10) / 2.5  # d(flux)/flux = 0.921 d(mag)
JD_MJD_OFFSET_DAYS = 2400000.5
MAX_MJD = 1_000_000.0  # MJD 1e6 is the year 4596: larger values are Julian dates
AB_MAG_RANGE = (-5.0, 40.0)  # anything outside is not an AB magnitude of a source
FAINT_FLUX_MARGIN_MAG = 2.5  # median detection 10x fainter than the 5-sigma depth: a unit mistake
BRIGHT_FLUX_MARGIN_MAG = 8.5  # median detection this much brighter than the depth: saturated (ZTF 12.1, LSST 15.9)
MAG_PER_1000X = 7.5  # 2.5 log10(1000): a unit 1000 times larger or smaller
NAMED_FLUX_UNITS_NJY = {"nJy": 1.0, "µJy": 1e3, "mJy": 1e6, "Jy": 1e9}
FLUX_UNIT_SPELLING = {"nJy": "nJy", "µJy": "uJy", "mJy": "mJy", "Jy": "Jy"}
COLUMNS = ("mjd", "band", "flux", "flux_err", "mag", "mag_err", "is_detection", "source_id")


class FluxScaleWarning(UserWarning):
    """The fluxes are implausible for the survey: most likely given in another unit than stated."""


@dataclass(frozen=True)
class Score:
    """The model's reading of one light curve.

    Attributes
    ----------
    probabilities : dict of str to float
        Calibrated probability of each class, by its canonical (ELAsTiCC2) name, in model order.
    class_ids : dict of str to int
        ELAsTiCC2 class id of each name.
    top_class : str
    top_class_id : int
    sn_likelihood : float
        P(Ia) + P(Ib/c) + P(II) + P(SLSN).
    flare_likelihood : float
        P(M-dwarf Flare).
    n_visits, n_detections : int
        Points the model saw (at most its window), and detections among them.
    model_version : str
    """

    probabilities: dict[str, float]
    class_ids: dict[str, int]
    top_class: str
    top_class_id: int
    sn_likelihood: float
    flare_likelihood: float
    n_visits: int
    n_detections: int
    model_version: str


class Model:
    """A checkpoint loaded for scoring light curves.

    Parameters
    ----------
    checkpoint : str or Path, optional
        Default: the shipped model.
    device : {"auto", "cpu", "cuda"}
    """

    def __init__(self, checkpoint=None, device: str = "auto"):
        from stream.config import ScoringSettings
        from stream.score import Scorer

        self.scorer = Scorer.from_checkpoint(checkpoint, ScoringSettings(device=device))

    @property
    def version(self) -> str:
        return self.scorer.version

    def score(self, data=None, *, mjd=None, band=None, flux=None, flux_err=None, is_detection=None,
              source_id=None, flux_unit=None, survey: str | None = None, **context) -> Score:
        """Score one object's light curve given in flux (see the module docstring for the columns).

        Parameters
        ----------
        data : pandas.DataFrame, astropy.table.Table or mapping of columns, optional
            Columns ``mjd``, ``band``, ``flux``, ``flux_err`` and optionally ``is_detection``,
            ``source_id``; other columns are ignored. Or give the columns as keywords.
        flux_unit : str or astropy unit, optional
            Unit of numbers without one (``"nJy"``, ``"uJy"``, ``"mJy"``, ``u.uJy``); required
            for them, ignored for Quantities (which are converted).
        survey : {"lsst", "rubin", "ztf"}, optional
            The survey of bare band letters.
        **context
            Alert context fields: none is used by this model yet, and naming one is an error.

        Raises
        ------
        ValueError
            Naming the bad column: missing, wrong length, non-finite, errors <= 0, repeated
            source ids, unknown bands, Julian dates, numbers without `flux_unit`, magnitudes.

        Warns
        -----
        FluxScaleWarning
            Fluxes implausible for the survey, naming the likely unit mistake.
        """
        columns = _columns(data, mjd=mjd, band=band, flux=flux, flux_err=flux_err, is_detection=is_detection,
                           source_id=source_id)
        _check_context(context, columns, ("mag", "mag_err"), "magnitudes are scored by score_magnitudes, not score")
        n = _length(columns, ("mjd", "band", "flux", "flux_err"))
        flux_njy, flux_err_njy, scale_njy = _fluxes_njy(columns["flux"], columns["flux_err"], flux_unit, n)
        curve = _curve(columns, n, flux_njy, flux_err_njy, survey)
        _warn_implausible_flux(curve, scale_njy)
        return self._score(curve)

    def score_magnitudes(self, data=None, *, mjd=None, band=None, mag=None, mag_err=None, is_detection=None,
                         source_id=None, survey: str | None = None, **context) -> Score:
        """Score one object's light curve given in AB magnitudes.

        As `score`, with columns ``mag`` (AB; plain numbers or an astropy ``u.ABmag``
        Quantity) and ``mag_err`` (mag) instead of ``flux`` and ``flux_err``. The flux is
        ``10**((31.4 - mag) / 2.5)`` nJy and its error ``0.921 * mag_err * flux``.
        """
        columns = _columns(data, mjd=mjd, band=band, mag=mag, mag_err=mag_err, is_detection=is_detection,
                           source_id=source_id)
        _check_context(context, columns, ("flux", "flux_err"), "fluxes are scored by score, not score_magnitudes")
        n = _length(columns, ("mjd", "band", "mag", "mag_err"))
        mag_ab = _values(_in_unit(columns["mag"], "mag", "ABmag"), "mag", n)
        mag_err = _values(_in_unit(columns["mag_err"], "mag_err", "mag"), "mag_err", n)
        outside = (mag_ab < AB_MAG_RANGE[0]) | (mag_ab > AB_MAG_RANGE[1])
        if outside.any():
            raise ValueError(f"mag: {int(outside.sum())} value(s) outside {AB_MAG_RANGE[0]:g}..{AB_MAG_RANGE[1]:g} "
                             f"(e.g. {mag_ab[outside][0]:g}) are not AB magnitudes; fluxes go to score")
        flux_njy = 10.0 ** ((AB_ZERO_POINT_NJY_MAG - mag_ab) / 2.5)
        return self._score(_curve(columns, n, flux_njy, MAG_ERR_TO_RELATIVE_FLUX_ERR * mag_err * flux_njy, survey,
                                  err_name="mag_err"))

    def _score(self, curve: LightCurve) -> Score:
        scores = self.scorer.score([curve])
        probs = scores.probs[0].astype(float)
        top = int(np.argmax(probs))
        return Score(
            probabilities=dict(zip(CLASS_NAMES, probs.tolist())), class_ids=dict(zip(CLASS_NAMES, CLASS_IDS)),
            top_class=CLASS_NAMES[top], top_class_id=CLASS_IDS[top],
            sn_likelihood=float(scores.sn_likelihood[0]), flare_likelihood=float(scores.flare_likelihood[0]),
            n_visits=int(scores.n_visits[0]), n_detections=int(scores.n_detections[0]),
            model_version=scores.model_version,
        )


@functools.cache
def default_model() -> Model:
    """The shipped model, loaded once per process."""
    return Model()


def score(data=None, **columns_and_options) -> Score:
    """`Model.score` with the shipped model.

    >>> from alertformer import score
    >>> result = score(mjd=[60000.10, 60001.20, 60003.05, 60005.10], band=["g", "r", "g", "r"], survey="ztf",
    ...                flux=[30.0, 60.0, 110.0, 140.0], flux_err=[2.0, 2.5, 2.2, 3.0], flux_unit="uJy")
    >>> sorted(result.probabilities) == sorted(result.class_ids), 0 <= result.sn_likelihood <= 1
    (True, True)
    """
    return default_model().score(data, **columns_and_options)


def score_magnitudes(data=None, **columns_and_options) -> Score:
    """`Model.score_magnitudes` with the shipped model."""
    return default_model().score_magnitudes(data, **columns_and_options)


# --- the conversions ---------------------------------------------------------------------
def _columns(data, **given) -> dict:
    """The columns of `data` this API reads, and the keyword columns given (not None); a column in both is an error."""
    columns = {}
    if data is not None:
        names = (list(data.colnames) if hasattr(data, "colnames")
                 else list(data.columns) if hasattr(data, "columns") else list(data.keys()) if isinstance(data, Mapping)
                 else None)
        if names is None:
            raise ValueError(f"data: a pandas DataFrame, astropy Table or mapping of columns, not {type(data).__name__}")
        for name in COLUMNS:
            if name in names:
                column = data[name]
                if getattr(column, "unit", None) is not None and hasattr(column, "quantity"):
                    column = column.quantity  # an astropy Table's Column with a unit
                columns[name] = column.to_numpy() if hasattr(column, "to_numpy") else column
    for name, value in given.items():
        if value is not None:
            if name in columns:
                raise ValueError(f"{name}: given both as a column of data and as a keyword")
            columns[name] = value
    return columns


def _check_context(context: dict, columns: dict, other_entry: tuple[str, str], other_entry_note: str) -> None:
    """Keyword arguments beyond the light curve's columns: the other entry's columns, or alert context."""
    other = [name for name in other_entry if name in columns or name in context]
    if other:
        raise ValueError(f"{', '.join(other)}: {other_entry_note}")
    if context:
        raise ValueError(f"{', '.join(sorted(context))}: not a light-curve column, and this model takes no alert "
                         f"context; columns: {', '.join(COLUMNS)}")


def _length(columns: dict, required: tuple[str, ...]) -> int:
    missing = [name for name in required if name not in columns]
    if missing:
        raise ValueError(f"{', '.join(missing)}: missing (need {', '.join(required)})")
    if np.ndim(columns[required[0]]) != 1:
        raise ValueError(f"{required[0]}: shape {np.shape(columns[required[0]])}, expected one value per point")
    n = len(columns[required[0]])
    if n == 0:
        raise ValueError(f"{required[0]}: no points")
    for name, column in columns.items():
        if np.ndim(column) != 1 or len(column) != n:
            raise ValueError(f"{name}: shape {np.shape(column)}, expected ({n},) like {required[0]}")
    return n


def _values(column, name: str, n: int) -> np.ndarray:
    """float64 values of a column without units; non-finite values are an error naming `name`."""
    try:
        values = np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected numbers") from None
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} of {n} value(s) not finite")
    return values


def _fluxes_njy(flux, flux_err, flux_unit, n: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Flux and error in nJy, and the nJy of one unit of the flux as given (for `FluxScaleWarning`).

    Quantities are converted (each from its own unit); plain numbers are in `flux_unit`.
    """
    from astropy import units as u

    units = [getattr(c, "unit", None) for c in (flux, flux_err)]
    if any(isinstance(unit, u.MagUnit) or unit == u.mag for unit in units):
        raise ValueError("flux: magnitudes are scored by score_magnitudes (mag=, mag_err=)")
    if units == [None, None]:
        if flux_unit is None:
            raise ValueError("flux_unit: needed for plain numbers, e.g. flux_unit='nJy' (or 'uJy', 'mJy'), "
                             "or pass astropy Quantities")
        try:
            units = [u.Unit(str(flux_unit).replace("µ", "u").replace("μ", "u"))] * 2
        except ValueError:
            raise ValueError(f"flux_unit {flux_unit!r}: not a unit astropy knows") from None
    elif None in units:
        plain, quantity, unit = ("flux", "flux_err", units[1]) if units[0] is None else ("flux_err", "flux", units[0])
        raise ValueError(f"{plain}: plain numbers beside {quantity} in {unit}; give both as Quantities, or both "
                         "as numbers with flux_unit=")
    try:
        scales_njy = [float((1.0 * unit).to_value(u.nJy)) for unit in units]
    except u.UnitConversionError:
        raise ValueError(f"flux: unit {units[0]} is not a spectral flux density (nJy, uJy, mJy, "
                         f"erg / (s cm2 Hz)); magnitudes go to score_magnitudes") from None
    return (_values(flux, "flux", n) * scales_njy[0], _values(flux_err, "flux_err", n) * scales_njy[1],
            scales_njy[0])


def _in_unit(column, name: str, unit: str):
    """The numbers of `column`: plain numbers as they are, a Quantity's if its unit is `unit` (an
    attribute of `astropy.units`: ``ABmag``, ``mag``)."""
    if getattr(column, "unit", None) is None:
        return column
    from astropy import units as u

    if column.unit == getattr(u, unit):
        return column.value
    raise ValueError(f"{name}: unit {column.unit}, expected {getattr(u, unit)}")


def _mjd_tai(column, n: int) -> np.ndarray:
    if hasattr(column, "tai") and hasattr(column, "jd1"):  # an astropy Time
        return np.atleast_1d(column.tai.mjd).astype(np.float64)
    mjd = _values(column, "mjd", n)
    if (mjd > MAX_MJD).any():
        raise ValueError(f"mjd: values like {mjd.max():.1f} are Julian dates; pass MJD "
                         f"(JD - {JD_MJD_OFFSET_DAYS}) or an astropy Time")
    return mjd


def _curve(columns: dict, n: int, flux_njy: np.ndarray, flux_err_njy: np.ndarray, survey: str | None,
           err_name: str = "flux_err") -> LightCurve:
    if not (flux_err_njy > 0).all():
        raise ValueError(f"{err_name}: {int((~(flux_err_njy > 0)).sum())} of {n} error(s) not positive")
    if "source_id" in columns:
        source_id = np.asarray(columns["source_id"])
        ids, counts = np.unique(source_id, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"source_id: {int((counts > 1).sum())} id(s) repeated (e.g. {ids[counts > 1][0].item()!r} "
                             f"{int(counts.max())} times); each point needs its own id, or leave source_id out")
        if not np.issubdtype(source_id.dtype, np.integer):
            source_id = np.unique(source_id, return_inverse=True)[1]  # string ids: numbered, still unique
    else:
        source_id = np.arange(n)
    is_detection = np.ones(n, bool) if "is_detection" not in columns else np.asarray(columns["is_detection"], bool)
    return LightCurve.from_arrays(source_id, _mjd_tai(columns["mjd"], n), parse_band_names(columns["band"], survey),
                                  flux_njy, flux_err_njy, is_detection)


def _warn_implausible_flux(curve: LightCurve, scale_njy: float) -> None:
    """Warn (`FluxScaleWarning`) if the detections' median flux is far outside what the survey detects."""
    shown = curve.is_detection & (curve.flux_njy > 0)
    if not shown.any():
        return
    mag = AB_ZERO_POINT_NJY_MAG - 2.5 * np.log10(curve.flux_njy[shown].astype(np.float64))
    below_depth_mag = float(np.median(mag - BAND_DEPTH_5SIGMA_MAG[curve.band[shown]]))
    median_mag = float(np.median(mag))
    if _plausible(below_depth_mag):
        return
    band = BAND_NAMES[int(np.bincount(curve.band[shown]).argmax())]
    # The nearest power of 1000 (either way) that would make the detections plausible: the likely unit.
    factor = next((k for k in (1, -1, 2, -2, 3, -3)
                   if _plausible(below_depth_mag - MAG_PER_1000X * k)), 0)
    stated, intended = _unit_name(scale_njy), _unit_name(scale_njy * 1000.0 ** factor)
    if factor and stated and intended:
        likely = f"values in {intended} passed as {stated}? (flux_unit={FLUX_UNIT_SPELLING[intended]!r})"
    else:
        likely = f"check the unit (flux_unit={stated or scale_njy})"
    if factor > 0 and 5 <= np.median(np.abs(curve.flux_njy[shown] / scale_njy)) <= 30:
        likely += " Or magnitudes passed as flux? (score_magnitudes)"
    where = (f"{below_depth_mag:.1f} mag fainter than the {band} 5-sigma depth"
             if below_depth_mag > 0 else f"{-below_depth_mag:.1f} mag brighter than the {band} 5-sigma depth "
             "(saturated)")
    warnings.warn(f"flux: the detections' median is AB {median_mag:.1f} mag, {where}: {likely}",
                  FluxScaleWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """The `warnings.warn` stack level of the first caller outside this module (the user's line)."""
    level, frame = 2, sys._getframe(2)
    while frame is not None and frame.f_code.co_filename == __file__:
        level, frame = level + 1, frame.f_back
    return level


def _plausible(below_depth_mag: float) -> bool:
    """Whether detections whose median lies `below_depth_mag` under the 5-sigma depth could be real."""
    return -BRIGHT_FLUX_MARGIN_MAG <= below_depth_mag <= FAINT_FLUX_MARGIN_MAG


def _unit_name(scale_njy: float) -> str | None:
    return next((name for name, njy in NAMED_FLUX_UNITS_NJY.items() if math.isclose(njy, scale_njy)), None)

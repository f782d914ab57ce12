"""Seeded, vectorised simulator of alert-stream light curves (LSST- or ZTF-like).

`simulate(n, rng)` draws objects of the ELAsTiCC2 classes below, observes them with a
survey cadence, adds noise, keeps the objects the survey would alert on, and returns
all photometry as one struct of arrays (`SimulatedSet`). Physics and its simplifications:
`training.sim_transients` (SNe, SLSNe, TDEs, kilonovae), `training.sim_variables`
(flares, dwarf novae, AGN, RR Lyrae, EBs), `training.sim_survey` (cadence, depths),
`training.sim_physics` (noise, cosmology, shapes).

Per object, the survey sees a window around the event; the light curve keeps the
non-detections of the `history_days` before the first detection (|F/sigma| >= 5) and
everything the survey reports in the `follow_days` after it: every visit (forced
photometry) for LSST, detections only for ZTF. ZTF non-detections are upper limits,
stored as flux 0 with error F5/5, the 5-sigma limiting flux over 5 (what a decoder
makes of ``diffmaglim``).
"""
from dataclasses import dataclass, field, fields
from functools import partial

import numpy as np

from models.bands import BAND_NAMES
from models.lightcurves import LightCurves
from models.priors import PLASTICC_SHARES
from training.sim_physics import mag_to_njy, noise_sigma_njy
from training.sim_survey import (
    SURVEY_SPAN_DAYS, SURVEY_START_MJD_TAI, SURVEYS, Cadence, Population, Survey, draw_cadence, sample_sky,
)
from training.sim_transients import draw_transients
from training.sim_variables import (
    draw_agn, draw_asteroids, draw_dwarf_novae, draw_eclipsing_binaries, draw_flares, draw_rr_lyrae,
)

# ELAsTiCC2 class ids (data/elasticc/taxonomy_classIds.csv).
CLASS_IDS: dict[str, int] = {
    "SN Ia": 2222, "SN Ib/c": 2223, "SN II": 2224, "KN": 2232, "M-dwarf flare": 2233,
    "dwarf nova": 2234, "SLSN": 2242, "TDE": 2243, "RR Lyrae": 2323, "EB": 2325, "AGN": 2332,
    "asteroid": 9000,  # alertformer's own Solar System class (models.taxonomy)
}
CLASS_NAMES: dict[int, str] = {class_id: name for name, class_id in CLASS_IDS.items()}
# The light-curve classes of ELAsTiCC2, without alertformer's asteroids: the simulated test sets
# of the evaluation and its peers' training sets, unchanged since before the asteroids came.
ELASTICC_CLASS_IDS: tuple[int, ...] = tuple(cid for name, cid in CLASS_IDS.items() if name != "asteroid")

_TRANSIENTS = ("SN Ia", "SN Ib/c", "SN II", "SLSN", "TDE", "KN")
_DRAWERS = {
    **{CLASS_IDS[name]: partial(draw_transients, name) for name in _TRANSIENTS},
    CLASS_IDS["M-dwarf flare"]: draw_flares,
    CLASS_IDS["dwarf nova"]: draw_dwarf_novae,
    CLASS_IDS["AGN"]: draw_agn,
    CLASS_IDS["RR Lyrae"]: draw_rr_lyrae,
    CLASS_IDS["EB"]: draw_eclipsing_binaries,
    CLASS_IDS["asteroid"]: draw_asteroids,
}

# Class mix of a realistic Rubin stream (PLAsTiCC test set; `models.priors.PLASTICC_SHARES`).
REALISTIC_MIX: dict[int, float] = {cid: share / sum(PLASTICC_SHARES.values()) for cid, share in PLASTICC_SHARES.items()}

DETECTION_SNR = 5.0
# Source ids are object_id * POINT_ID_STRIDE + the point's index in its light curve.
POINT_ID_STRIDE = 10_000
# Time after the event within which the first detection is looked for, days: the
# simulated window is [event - lead - history, event + follow + this].
_DETECTION_LAG_DAYS = 120.0
# Objects per vectorised chunk (bounds memory: a chunk holds ~15 (chunk, ~500) arrays).
_MAX_CHUNK = 4096
_MIN_CHUNK = 64
# Give up on a class when fewer than 1 in this many drawn objects is detected.
_MAX_DRAWS_PER_OBJECT = 1000


@dataclass(frozen=True, eq=False, kw_only=True)
class SimulatedSet(LightCurves):
    """Simulated objects and their photometry: `LightCurves` (ids: the object ids) with each object's truth.

    Object i's points are ``offsets[i]:offsets[i + 1]`` of the flat columns, sorted by time.

    Attributes
    ----------
    survey : str
        ``"lsst"`` or ``"ztf"``.
    class_id : (N,) int32
        ELAsTiCC2 class id (`CLASS_IDS`).
    object_id : (N,) int64
        Unique object id.
    redshift : (N,) float64
        Redshift, 0 for Galactic objects.
    ra_deg, dec_deg : (N,) float64
        ICRS position, degrees.
    event_mjd_tai : (N,) float64
        MJD TAI of the event: the peak at 500 nm rest frame of a transient, the caught
        flare's peak, the peak of a dwarf nova's anchored outburst, maximum light of an
        RR Lyrae, primary eclipse of an EB; for an AGN the epoch its window is anchored at.
    template_flux_njy : (N, n_bands) float32
        Template (reference) flux in each band of `models.bands.BAND_NAMES`, nJy; 0 for
        extragalactic transients. Science-image flux = template + difference flux.
    offsets : (N + 1,) int64
        Start of each object's points in the flat columns.
    source_id : (P,) int64
        Unique point id, ``object_id * POINT_ID_STRIDE + index in the light curve``.
    mjd_tai : (P,) float64
        Mid-exposure time, MJD TAI.
    band : (P,) int8
        Band code (`models.bands`).
    flux_njy, flux_err_njy : (P,) float32
        Difference flux and 1-sigma error, nJy.
    is_detection : (P,) bool
        True where |flux / error| >= 5.
    rng_state : dict
        The generator's ``bit_generator.state`` before simulating: reproduces the set.
    """

    survey: str
    class_id: np.ndarray
    object_id: np.ndarray
    redshift: np.ndarray
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    event_mjd_tai: np.ndarray
    template_flux_njy: np.ndarray
    rng_state: dict = field(repr=False)


@dataclass(frozen=True, eq=False)
class _Observed:
    """Accepted objects with flat photometry, before ids and the final shuffle."""

    class_id: np.ndarray
    redshift: np.ndarray
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    event_mjd_tai: np.ndarray
    template_flux_njy: np.ndarray
    n_points: np.ndarray
    mjd_tai: np.ndarray
    band: np.ndarray
    flux_njy: np.ndarray
    flux_err_njy: np.ndarray
    is_detection: np.ndarray

    OBJECT_FIELDS = ("class_id", "redshift", "ra_deg", "dec_deg", "event_mjd_tai", "template_flux_njy", "n_points")
    POINT_FIELDS = ("mjd_tai", "band", "flux_njy", "flux_err_njy", "is_detection")
    DTYPES = {"class_id": np.int32, "redshift": np.float64, "ra_deg": np.float64, "dec_deg": np.float64,
              "event_mjd_tai": np.float64, "template_flux_njy": np.float32, "n_points": np.int64,
              "mjd_tai": np.float64, "band": np.int8, "flux_njy": np.float32, "flux_err_njy": np.float32,
              "is_detection": np.bool_}

    def __len__(self) -> int:
        return len(self.class_id)

    def take(self, order: np.ndarray) -> "_Observed":
        """The objects `order` (indices), in that order, with their points."""
        starts = np.concatenate([[0], np.cumsum(self.n_points)])[order]
        counts = self.n_points[order]
        first_new = np.concatenate([[0], np.cumsum(counts)[:-1]])
        points = np.repeat(starts - first_new, counts) + np.arange(counts.sum())
        return _Observed(**{f: getattr(self, f)[order] for f in self.OBJECT_FIELDS},
                         **{f: getattr(self, f)[points] for f in self.POINT_FIELDS})

    @classmethod
    def concatenate(cls, parts: list["_Observed"]) -> "_Observed":
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    @classmethod
    def empty(cls) -> "_Observed":
        return cls(**{f: np.empty((0, len(BAND_NAMES)) if f == "template_flux_njy" else 0, dtype=t)
                      for f, t in cls.DTYPES.items()})


@dataclass(frozen=True)
class _Options:
    survey: Survey
    history_days: float
    follow_days: float
    min_detections: int


def _noisy_photometry(rng, population: Population, cadence: Cadence, true_njy: np.ndarray, options: _Options):
    """Measured difference flux, its error and the detection flag at every slot, (N, S) each.

    Without forced photometry a non-detection is an upper limit: flux 0, error F5/5.
    """
    template_njy = np.take_along_axis(population.template_flux_njy, cadence.band.astype(np.intp), axis=1)
    flux5_njy = mag_to_njy(cadence.m5_mag)
    flux_err_njy = noise_sigma_njy(template_njy + true_njy, flux5_njy, floor_mag=options.survey.error_floor_mag)
    flux_njy = true_njy + flux_err_njy * rng.standard_normal(true_njy.shape)
    is_detection = cadence.valid & (np.abs(flux_njy) >= DETECTION_SNR * flux_err_njy)
    if not options.survey.forced_photometry:  # upper limits: no flux, the limit's sigma
        flux_njy = np.where(is_detection, flux_njy, 0.0)
        flux_err_njy = np.where(is_detection, flux_err_njy, flux5_njy / DETECTION_SNR)
    return flux_njy, flux_err_njy, is_detection


def _reported(cadence: Cadence, is_detection: np.ndarray, options: _Options) -> np.ndarray:
    """(N, S) True for the slots the light curve keeps, around each row's first detection."""
    rows = np.arange(len(is_detection))
    first_mjd = cadence.mjd_tai[rows, np.argmax(is_detection, axis=1)]
    first_mjd = np.where(is_detection.any(axis=1), first_mjd, np.inf)[:, None]
    keep = (cadence.valid & (cadence.mjd_tai >= first_mjd - options.history_days)
            & (cadence.mjd_tai <= first_mjd + options.follow_days))
    if not options.survey.forced_photometry:
        keep &= is_detection | (cadence.mjd_tai < first_mjd)
    return keep


def _observe_chunk(rng, class_id: int, n: int, options: _Options) -> _Observed:
    """Draw `n` objects of one class, observe them, and return those with enough detections."""
    survey = options.survey
    anchor_mjd = SURVEY_START_MJD_TAI + rng.uniform(0.0, SURVEY_SPAN_DAYS, n)
    population = _DRAWERS[class_id](rng, anchor_mjd, survey)
    ra_deg, dec_deg = sample_sky(rng, n, survey)
    start_mjd = population.event_mjd_tai - population.lead_days - options.history_days
    stop_mjd = population.event_mjd_tai + options.follow_days + _DETECTION_LAG_DAYS
    cadence = draw_cadence(rng, survey, ra_deg, start_mjd, stop_mjd)
    true_njy, event_mjd = population.difference_flux_njy(rng, cadence)
    flux_njy, flux_err_njy, is_detection = _noisy_photometry(rng, population, cadence, true_njy, options)
    keep = _reported(cadence, is_detection, options)
    accepted = (keep & is_detection).sum(axis=1) >= options.min_detections
    keep = keep[accepted]
    objects = {"class_id": np.full(int(accepted.sum()), class_id), "redshift": population.redshift[accepted],
               "ra_deg": ra_deg[accepted], "dec_deg": dec_deg[accepted], "event_mjd_tai": event_mjd[accepted],
               "template_flux_njy": population.template_flux_njy[accepted], "n_points": keep.sum(axis=1)}
    points = {"mjd_tai": cadence.mjd_tai, "band": cadence.band, "flux_njy": flux_njy,
              "flux_err_njy": flux_err_njy, "is_detection": is_detection}
    return _Observed(**{f: v.astype(_Observed.DTYPES[f]) for f, v in objects.items()},
                     **{f: v[accepted][keep].astype(_Observed.DTYPES[f]) for f, v in points.items()})


def _simulate_class(rng, class_id: int, n: int, options: _Options) -> _Observed:
    """Draw chunks of one class until `n` objects are accepted; the chunk size follows the acceptance rate."""
    parts, n_accepted, n_drawn = [], 0, 0
    while n_accepted < n:
        acceptance = (n_accepted + 1) / (n_drawn + 2)
        chunk = int(np.clip((n - n_accepted) / acceptance * 1.1, _MIN_CHUNK, _MAX_CHUNK))
        parts.append(_observe_chunk(rng, class_id, chunk, options))
        n_accepted += len(parts[-1])
        n_drawn += chunk
        if n_drawn > _MAX_DRAWS_PER_OBJECT * n + _MAX_CHUNK and n_accepted < n:
            raise RuntimeError(f"{CLASS_NAMES[class_id]}: only {n_accepted} of {n_drawn} drawn objects "
                               f"reach {options.min_detections} detection(s) in {options.survey.name}")
    observed = _Observed.concatenate(parts)
    return observed.take(np.arange(n))


def _class_counts(rng, n: int, classes: list[int] | None, class_weights) -> dict[int, int]:
    """Objects per class: multinomial for `class_weights`, else as equal as possible."""
    if class_weights is not None:
        classes = list(class_weights) if classes is None else classes
        weights = np.array([class_weights.get(c, 0.0) for c in classes], dtype=np.float64)
        if np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("class_weights: need non-negative weights with a positive sum")
        return dict(zip(classes, rng.multinomial(n, weights / weights.sum()).tolist()))
    classes = list(CLASS_IDS.values()) if classes is None else classes
    counts = np.full(len(classes), n // len(classes))
    counts[rng.choice(len(classes), n % len(classes), replace=False)] += 1
    return dict(zip(classes, counts.tolist()))


def _finish(observed: _Observed, survey: str, first_object_id: int, rng_state: dict) -> SimulatedSet:
    """Assign object and source ids and pack the set."""
    if len(observed) and observed.n_points.max() >= POINT_ID_STRIDE:
        raise ValueError(f"a light curve has {observed.n_points.max()} points, more than source ids allow "
                         f"({POINT_ID_STRIDE - 1}); shorten follow_days")
    object_id = first_object_id + np.arange(len(observed), dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(observed.n_points)]).astype(np.int64)
    point_index = np.arange(offsets[-1]) - np.repeat(offsets[:-1], observed.n_points)
    return SimulatedSet(
        survey=survey, object_id=object_id, ids=object_id, offsets=offsets,
        source_id=np.repeat(object_id, observed.n_points) * POINT_ID_STRIDE + point_index,
        rng_state=rng_state,
        **{f: getattr(observed, f) for f in _Observed.OBJECT_FIELDS + _Observed.POINT_FIELDS if f != "n_points"},
    )


def simulate(
    n: int,
    rng: np.random.Generator,
    survey: str = "lsst",
    classes=None,
    class_weights=None,
    *,
    history_days: float | None = None,
    follow_days: float = 365.0,
    min_detections: int = 1,
    first_object_id: int = 0,
) -> SimulatedSet:
    """Simulate `n` alerted objects and their light curves.

    Parameters
    ----------
    n : int
        Number of objects to return (each with at least `min_detections` detections).
    rng : numpy.random.Generator
        Source of all randomness: the same generator state gives identical arrays.
    survey : {"lsst", "ztf"}
        Cadence, bands, depths and what is reported (forced photometry or detections).
    classes : iterable of int, optional
        ELAsTiCC2 class ids to simulate (`CLASS_IDS`); default all, or the keys of
        `class_weights`.
    class_weights : mapping of int to float, optional
        Relative frequency per class id, e.g. `REALISTIC_MIX`; class counts are then
        multinomial. Default: equal counts (balanced).
    history_days : float, optional
        Non-detections kept before the first detection, days; default the survey's
        (30 d: Rubin precovery forced photometry, ZTF's 30 days of upper limits).
    follow_days : float
        Points kept after the first detection, days.
    min_detections : int
        Objects with fewer detections in their light curve are redrawn.
    first_object_id : int
        Object ids are `first_object_id` + 0..n-1 (source ids follow from them).

    Returns
    -------
    SimulatedSet
        Objects in random order.

    >>> sims = simulate(12, np.random.default_rng(0))
    >>> sorted(set(sims.class_id.tolist())) == sorted(CLASS_IDS.values())
    True
    >>> bool(all(lc.is_detection.any() for lc in sims))
    True
    """
    if survey not in SURVEYS:
        raise ValueError(f"survey {survey!r}: expected one of {sorted(SURVEYS)}")
    if n < 0 or min_detections < 1:
        raise ValueError("need n >= 0 and min_detections >= 1")
    classes = None if classes is None else list(dict.fromkeys(classes))
    if classes == []:
        raise ValueError("classes: empty; pass None for all classes")
    unknown = (set(classes or ()) | set(class_weights or ())) - set(_DRAWERS)
    if unknown:
        raise ValueError(f"unknown class id(s) {sorted(unknown)}; known: {sorted(_DRAWERS)}")
    rng_state = rng.bit_generator.state
    options = _Options(SURVEYS[survey], SURVEYS[survey].history_days if history_days is None else history_days,
                       follow_days, min_detections)
    counts = _class_counts(rng, n, classes, class_weights)
    parts = [_simulate_class(rng, c, k, options) for c, k in counts.items() if k > 0]
    observed = _Observed.concatenate(parts) if parts else _Observed.empty()
    return _finish(observed.take(rng.permutation(len(observed))), survey, first_object_id, rng_state)

"""Surveys for the simulator: sky footprint, observing seasons, nightly visit patterns, depths.

A `Survey` describes how one field is visited; `draw_cadence` turns it into padded
(N objects, S visit slots) arrays, one row per object, sorted in time within a row.
`Population` is the interface every simulated class implements: it turns a cadence
into difference fluxes.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from models.bands import BAND_CODE, BAND_DEPTH_5SIGMA_MAG

SURVEY_START_MJD_TAI = 60800.0
# Event times are drawn uniformly over this span after the survey start.
SURVEY_SPAN_DAYS = 3 * 365.25
YEAR_DAYS = 365.25
# MJD of the 2025 March equinox (2025-03-20 09:01 UTC), when the Sun is at RA 0.
_MARCH_EQUINOX_MJD = 60754.376
_MINUTES_PER_DAY = 1440.0


@dataclass(frozen=True)
class Survey:
    """How a survey visits one field.

    Attributes
    ----------
    name : str
        ``"lsst"`` or ``"ztf"``.
    night_patterns : tuple of tuple of str
        The band sequences a field can get in one night, e.g. ``("lsst-g", "lsst-r")``.
    pattern_weights : tuple of float
        Relative frequency of each pattern.
    mean_gap_nights : float
        Mean spacing of the nights a field is visited (1 + Poisson(mean - 1)).
    slot_separation_min : (float, float)
        Range of the time between successive visits of one night, minutes.
    night_start_fraction : (float, float)
        Range of the UTC day fraction of a night's first visit.
    depth_offset_mag, depth_scatter_mag : float
        Mean and rms of the per-visit m5 relative to `BAND_DEPTH_5SIGMA_MAG`.
    season_days : (float, float)
        Range of the length of a field's observing season, days.
    dec_range_deg : (float, float)
        Declination range of the footprint, degrees.
    forced_photometry : bool
        True: every visit after the first detection is kept (Rubin forced photometry);
        False: only detections after it (ZTF), non-detections before it are upper limits.
    history_days : float
        Default span of non-detections kept before the first detection, days.
    error_floor_mag : float
        Systematic floor of the photometric error, mag (`training.sim_physics.noise_sigma_njy`).
    """

    name: str
    night_patterns: tuple[tuple[str, ...], ...]
    pattern_weights: tuple[float, ...]
    mean_gap_nights: float
    slot_separation_min: tuple[float, float]
    night_start_fraction: tuple[float, float]
    depth_offset_mag: float
    depth_scatter_mag: float
    season_days: tuple[float, float]
    dec_range_deg: tuple[float, float]
    forced_photometry: bool
    history_days: float
    error_floor_mag: float

    @property
    def band_codes(self) -> np.ndarray:
        """Codes of the bands this survey observes, sorted."""
        return np.unique([BAND_CODE[b] for p in self.night_patterns for b in p]).astype(np.int8)


# Rubin: pairs of visits in different filters ~30 min apart every ~3-4 nights in season,
# filters in roughly the baseline survey's proportions (u 6%, g 11%, r 20%, i 23%, z 21%, y 18%);
# realistic fields are 0.4-0.5 mag shallower than the zenith depths (SCIENCE.md section 4).
# Rubin's 30-day precovery forced photometry sets the default history.
LSST = Survey(
    name="lsst",
    night_patterns=(
        ("lsst-u", "lsst-g"), ("lsst-u", "lsst-r"), ("lsst-g", "lsst-r"), ("lsst-g", "lsst-i"),
        ("lsst-r", "lsst-i"), ("lsst-r", "lsst-z"), ("lsst-i", "lsst-z"), ("lsst-i", "lsst-y"),
        ("lsst-z", "lsst-y"), ("lsst-r",), ("lsst-i",), ("lsst-z",), ("lsst-y",),
    ),
    pattern_weights=(0.07, 0.04, 0.08, 0.05, 0.15, 0.05, 0.12, 0.06, 0.17, 0.04, 0.04, 0.03, 0.10),
    mean_gap_nights=3.5,
    slot_separation_min=(15.0, 45.0),
    night_start_fraction=(0.0, 0.35),
    depth_offset_mag=-0.45,
    depth_scatter_mag=0.25,
    season_days=(180.0, 240.0),
    dec_range_deg=(-90.0, 12.0),
    forced_photometry=True,
    history_days=30.0,
    error_floor_mag=0.005,  # SCIENCE.md section 4
)

# ZTF public survey: g and r every 2-3 nights, i now and then, no forced photometry;
# alert packets carry 30 days of previous upper limits. The error floor is measured on the real
# labelled packets (data/labeled/ztf_packets, 11,944 detections): their median sigmapsf is
# 0.034-0.053 mag from 15 to 17.5 mag, where a 0.005 mag floor gave 0.007-0.020 (the
# simulated errors were ~2.5x too small); 0.05 mag gives 0.050-0.054 there and 0.060-0.078 at
# 17.75-18.75 (real 0.062-0.098), using each alert's own diffmaglim as its depth.
ZTF = Survey(
    name="ztf",
    night_patterns=(
        ("ztf-g", "ztf-r"), ("ztf-r", "ztf-g"), ("ztf-g", "ztf-r", "ztf-i"), ("ztf-g",), ("ztf-r",),
    ),
    pattern_weights=(0.40, 0.40, 0.10, 0.05, 0.05),
    mean_gap_nights=2.5,
    slot_separation_min=(30.0, 90.0),
    night_start_fraction=(0.15, 0.45),
    depth_offset_mag=0.0,
    depth_scatter_mag=0.3,
    season_days=(180.0, 240.0),
    dec_range_deg=(-30.0, 90.0),
    forced_photometry=False,
    history_days=30.0,
    error_floor_mag=0.05,
)

SURVEYS: dict[str, Survey] = {s.name: s for s in (LSST, ZTF)}


@dataclass(frozen=True)
class Cadence:
    """Visits of N fields as padded (N, S) arrays, sorted in time within each row.

    Attributes
    ----------
    mjd_tai : (N, S) float64
        Mid-exposure time of each slot, MJD TAI (also set for invalid slots).
    band : (N, S) int8
        Band code of each slot (a valid code of the survey even where `valid` is False).
    m5_mag : (N, S) float64
        5-sigma limiting AB magnitude of each visit.
    valid : (N, S) bool
        True where the slot is a real visit: inside the window, after the survey start.
    start_mjd_tai, stop_mjd_tai : (N,) float64
        The window each row was drawn for.
    """

    mjd_tai: np.ndarray
    band: np.ndarray
    m5_mag: np.ndarray
    valid: np.ndarray
    start_mjd_tai: np.ndarray
    stop_mjd_tai: np.ndarray


def sample_sky(rng: np.random.Generator, n: int, survey: Survey) -> tuple[np.ndarray, np.ndarray]:
    """Positions uniform on the sphere inside the survey's declination range.

    Returns
    -------
    ra_deg, dec_deg : (n,) float64
    """
    sin_lo, sin_hi = np.sin(np.radians(survey.dec_range_deg))
    dec_deg = np.degrees(np.arcsin(rng.uniform(sin_lo, sin_hi, n)))
    return rng.uniform(0.0, 360.0, n), dec_deg


def season_centre_mjd(ra_deg) -> np.ndarray:
    """MJD (in the year after the 2025 March equinox) when a field is opposite the Sun.

    The Sun's right ascension advances ~360 deg a year from 0 at the March equinox, so a
    field at `ra_deg` transits at midnight (the middle of its season) when the Sun is at
    ra_deg - 180.
    """
    return _MARCH_EQUINOX_MJD + YEAR_DAYS * np.mod(np.asarray(ra_deg) / 360.0 - 0.5, 1.0)


def _pattern_table(survey: Survey) -> np.ndarray:
    """(P, M) band codes of the night patterns, -1 past a pattern's end."""
    width = max(len(p) for p in survey.night_patterns)
    table = np.full((len(survey.night_patterns), width), -1, dtype=np.int8)
    for row, pattern in enumerate(survey.night_patterns):
        table[row, : len(pattern)] = [BAND_CODE[b] for b in pattern]
    return table


def _in_season_days(elapsed_days, season_days):
    """Days in season within `elapsed_days` of calendar time from the start of a season."""
    cycles, rest = np.divmod(elapsed_days, YEAR_DAYS)
    return cycles * season_days + np.minimum(rest, season_days)


def _visited_nights(rng, survey: Survey, ra_deg, start_mjd, stop_mjd) -> np.ndarray:
    """(N, K) MJDs of the nights a field is visited, from its window start, in season only.

    Gaps of 1 + Poisson(mean - 1) nights are laid out in "season time" (days counted only
    while the field is in season) and mapped to the calendar by skipping the months out
    of season, so no night is drawn outside a season.
    """
    season_days = rng.uniform(*survey.season_days, len(ra_deg))
    opens = season_centre_mjd(ra_deg) - 0.5 * season_days  # start of a season, any year
    opens += YEAR_DAYS * np.floor((start_mjd - opens) / YEAR_DAYS)  # latest one before the window
    first_days = _in_season_days(start_mjd - opens, season_days)
    needed_days = _in_season_days(stop_mjd - opens, season_days) - first_days
    n_nights = int(np.ceil(np.max(needed_days) / survey.mean_gap_nights * 1.15)) + 4
    gaps = 1 + rng.poisson(survey.mean_gap_nights - 1.0, (len(ra_deg), n_nights))
    phase = rng.uniform(0.0, 1.0, (len(ra_deg), 1))  # where the first visit falls in its gap
    season_time = first_days[:, None] + np.cumsum(gaps, axis=1) - phase * gaps[:, :1]
    seasons_passed = np.floor(season_time / season_days[:, None])
    return np.floor(opens[:, None] + season_time + seasons_passed * (YEAR_DAYS - season_days[:, None]))


def draw_cadence(rng: np.random.Generator, survey: Survey, ra_deg, start_mjd_tai, stop_mjd_tai) -> Cadence:
    """Draw the visits of N fields over their windows.

    Parameters
    ----------
    rng : numpy.random.Generator
    survey : Survey
    ra_deg : (N,) array_like
        Right ascension of each field, degrees (sets its observing season).
    start_mjd_tai, stop_mjd_tai : (N,) array_like
        Window of each field, MJD TAI.

    Returns
    -------
    Cadence
        (N, S) slots, the valid ones first in each row: S is the largest number of
        visits any row gets.
    """
    start_mjd_tai = np.asarray(start_mjd_tai, dtype=np.float64)
    stop_mjd_tai = np.asarray(stop_mjd_tai, dtype=np.float64)
    nights = _visited_nights(rng, survey, ra_deg, start_mjd_tai, stop_mjd_tai)  # (N, K)
    n, k = nights.shape
    weights = np.asarray(survey.pattern_weights) / np.sum(survey.pattern_weights)
    table = _pattern_table(survey)
    band = table[rng.choice(len(table), size=(n, k), p=weights)]  # (N, K, M)
    separation_days = rng.uniform(*survey.slot_separation_min, (n, k, 1)) / _MINUTES_PER_DAY
    first_visit = nights + rng.uniform(*survey.night_start_fraction, (n, k))
    mjd = first_visit[..., None] + separation_days * np.arange(table.shape[1])  # (N, K, M)
    valid = (
        (band >= 0) & (mjd >= start_mjd_tai[:, None, None]) & (mjd <= stop_mjd_tai[:, None, None])
        & (mjd >= SURVEY_START_MJD_TAI)
    )
    mjd, band, valid = _compact(mjd.reshape(n, -1), band.reshape(n, -1), valid.reshape(n, -1), start_mjd_tai)
    band = np.where(valid, band, survey.band_codes[0]).astype(np.int8)
    m5_mag = (BAND_DEPTH_5SIGMA_MAG[band] + np.float32(survey.depth_offset_mag)
              + survey.depth_scatter_mag * rng.standard_normal(band.shape, dtype=np.float32))
    return Cadence(mjd, band, m5_mag.astype(np.float64), valid, start_mjd_tai, stop_mjd_tai)


def _compact(mjd, band, valid, start_mjd):
    """Move each row's valid slots to the front (in time order) and drop columns no row uses.

    The times of the invalid slots left at a row's end repeat its last visit (or the
    window start), so every row stays sorted (correlated-noise models step through all slots).
    """
    counts = valid.sum(axis=1)
    front = np.arange(max(int(counts.max()), 1)) < counts[:, None]  # (N, width)
    compact_mjd = np.repeat(start_mjd[:, None], front.shape[1], axis=1)
    compact_mjd[front] = mjd[valid]  # row-major order on both sides keeps each row's time order
    compact_band = np.zeros(front.shape, dtype=band.dtype)
    compact_band[front] = band[valid]
    return np.maximum.accumulate(compact_mjd, axis=1), compact_band, front


@dataclass(frozen=True)
class Population(ABC):
    """N objects of one class, drawn before they are observed.

    Subclasses add their parameters and implement `difference_flux_njy`.

    Attributes
    ----------
    redshift : (N,) float64
        0 for Galactic objects.
    event_mjd_tai : (N,) float64
        Epoch the object is anchored at, MJD TAI: the peak of a transient, a periodic
        variable's reference epoch, the reference epoch of an AGN's window.
    lead_days : (N,) float64
        How long before `event_mjd_tai` a detection can come, days (observer frame).
    template_flux_njy : (N, n_bands) float64
        Flux in the template (reference) image in every band of `models.bands`, nJy:
        the quiescent or mean flux of a variable, 0 for a transient (hosts are not simulated).
    """

    redshift: np.ndarray
    event_mjd_tai: np.ndarray
    lead_days: np.ndarray
    template_flux_njy: np.ndarray

    @abstractmethod
    def difference_flux_njy(self, rng: np.random.Generator, cadence: Cadence) -> tuple[np.ndarray, np.ndarray]:
        """Noiseless difference flux at every slot of `cadence`.

        Returns
        -------
        flux_njy : (N, S) float64
            Source flux minus template flux, nJy.
        event_mjd_tai : (N,) float64
            The event epochs, updated where the model places its event only now (flares).
        """

"""Extragalactic transients: SNe Ia, II, Ib/c, SLSNe, TDEs and kilonovae.

One Villar et al. (2019) shape per object in the rest frame, with the peak absolute
magnitude, rise, fall and plateau of SCIENCE.md section 3. Colours come from a
blackbody at the rest-frame wavelength of each band, the fall time scales with that
wavelength so blue bands fade faster (g about twice as fast as r for SNe; not at all
for TDEs, fast for kilonovae), and SNe lose flux blueward of a line-blanketing cut-off.
Redshifts follow a constant comoving rate out to a little past the survey's reach;
times are dilated by 1+z and the AB K-correction of f_nu is -2.5 log10(1+z).
"""
from dataclasses import dataclass

import numpy as np

from models.bands import BAND_DEPTH_5SIGMA_MAG, BAND_NAMES, BAND_WAVELENGTH_NM
from training.sim_physics import (
    REFERENCE_WAVELENGTH_NM, blackbody_ratio, comoving_rate_fraction, distance_modulus_mag, mag_to_njy,
    sample_redshift, villar_peak, villar_shape,
)
from training.sim_survey import Cadence, Population, Survey

_Z_MIN = 0.01
# Redshifts are drawn out to where a bright member would be this much fainter than the
# typical m5 at peak, mag: objects drawn past it are almost never detected, so they
# would only cost time.
_REACH_MARGIN_MAG = 0.75
_REACH_Z_GRID = np.linspace(_Z_MIN, 4.0, 800)
# Fall-time scaling is evaluated between half and twice the reference wavelength.
_WAVELENGTH_RATIO_RANGE = (0.5, 2.0)
_MAX_PLATEAU_DROP = 0.95


@dataclass(frozen=True)
class TransientPrior:
    """Rest-frame parameter ranges of one transient type (uniform unless stated).

    Attributes
    ----------
    abs_mag : (mean, sd)
        Gaussian peak absolute AB magnitude at `REFERENCE_WAVELENGTH_NM`.
    tau_rise_days, tau_fall_days, plateau_days : (lo, hi)
        Villar rise time, fall time and plateau length, rest-frame days.
    plateau_drop : (lo, hi)
        Fractional decline over the plateau at the reference wavelength.
    temperature_k : (lo, hi)
        Blackbody temperature setting the colours, K.
    fade_index : (lo, hi)
        tau_fall ∝ (wavelength / reference)^fade_index; 2.7 makes g fade twice as fast as r.
    uv_cutoff_nm : float
        Below this rest wavelength the flux falls as (wavelength / cutoff)^3 (line blanketing).
    """

    abs_mag: tuple[float, float]
    tau_rise_days: tuple[float, float]
    tau_fall_days: tuple[float, float]
    plateau_days: tuple[float, float]
    plateau_drop: tuple[float, float]
    temperature_k: tuple[float, float]
    fade_index: tuple[float, float]
    uv_cutoff_nm: float


# Calibrated on the real ZTF BTS train split (`training/sim_check.py`): per class, the median
# time from first detection to r-band peak, g-r at the r-band peak and 15 days after it, and the
# r-band decline over the 15 and 30 days after peak, of simulated ZTF curves peaking brighter than
# 18.9 mag against the BTS ones. The earlier values (from SCIENCE.md's ranges) made SNe Ia 0.25 mag
# too red at peak and fade 30 % too slowly, and SNe II rise for 45 days and stay detected for a
# year, so the simulations taught colours and time scales that real SNe do not have.
_SN_FADE = (2.2, 3.2)
SN_IA = TransientPrior((-19.3, 0.3), (1.5, 4.0), (10.0, 22.0), (1.0, 10.0), (0.0, 0.3),
                       (11_000.0, 14_000.0), (1.4, 2.4), 380.0)
SN_IIP = TransientPrior((-16.7, 1.0), (1.0, 5.0), (15.0, 40.0), (30.0, 80.0), (0.5, 0.9),
                        (10_000.0, 15_000.0), _SN_FADE, 350.0)
SN_IIL = TransientPrior((-16.7, 1.0), (1.0, 5.0), (15.0, 40.0), (1.0, 10.0), (0.2, 0.5),
                        (10_000.0, 15_000.0), _SN_FADE, 350.0)
SN_IIN = TransientPrior((-17.5, 1.2), (3.0, 10.0), (30.0, 100.0), (0.0, 10.0), (0.0, 0.2),
                        (8_000.0, 15_000.0), (1.5, 2.5), 300.0)
SN_IBC = TransientPrior((-17.6, 0.9), (2.0, 6.0), (8.0, 20.0), (0.0, 5.0), (0.0, 0.2),
                        (7_000.0, 10_000.0), _SN_FADE, 400.0)
SLSN_I = TransientPrior((-21.5, 0.7), (5.0, 15.0), (20.0, 60.0), (0.0, 10.0), (0.0, 0.2),
                        (14_000.0, 22_000.0), (1.0, 2.0), 250.0)
TDE = TransientPrior((-19.75, 0.4), (5.0, 15.0), (30.0, 100.0), (0.0, 0.0), (0.0, 0.0),
                     (20_000.0, 40_000.0), (0.0, 0.0), 1.0)
KILONOVA = TransientPrior((-15.75, 0.4), (0.3, 1.0), (1.0, 4.0), (0.0, 0.0), (0.0, 0.0),
                          (5_000.0, 9_000.0), (3.0, 5.0), 1.0)

# Each simulated class is a mixture of types with these fractions (ELAsTiCC's SN II
# class holds II-P, II-L and IIn models).
TRANSIENT_MIXTURES: dict[str, tuple[tuple[TransientPrior, float], ...]] = {
    "SN Ia": ((SN_IA, 1.0),),
    "SN Ib/c": ((SN_IBC, 1.0),),
    "SN II": ((SN_IIP, 0.65), (SN_IIL, 0.27), (SN_IIN, 0.08)),
    "SLSN": ((SLSN_I, 1.0),),
    "TDE": ((TDE, 1.0),),
    "KN": ((KILONOVA, 1.0),),
}


@dataclass(frozen=True)
class TransientPopulation(Population):
    """Transients with Villar light curves; rest-frame parameters are (N,) arrays.

    Attributes
    ----------
    t0_mjd_tai : (N,) float64
        Villar t0 (middle of the logistic rise), MJD TAI.
    peak_ref_njy : (N,) float64
        Observed f_nu at peak for the rest-frame reference wavelength, nJy.
    shape_peak : (N,) float64
        Maximum of the unnormalised Villar shape.
    """

    t0_mjd_tai: np.ndarray
    peak_ref_njy: np.ndarray
    shape_peak: np.ndarray
    tau_rise_days: np.ndarray
    tau_fall_days: np.ndarray
    plateau_days: np.ndarray
    plateau_drop: np.ndarray
    temperature_k: np.ndarray
    fade_index: np.ndarray
    uv_cutoff_nm: np.ndarray

    def _colour(self, rest_nm: np.ndarray) -> np.ndarray:
        """Blackbody colour times line blanketing at rest wavelengths `rest_nm` (N, B)."""
        blanketing = np.minimum(rest_nm / self.uv_cutoff_nm[:, None], 1.0) ** 3
        return blackbody_ratio(rest_nm, self.temperature_k[:, None]) * blanketing

    def difference_flux_njy(self, rng, cadence: Cadence):
        def col(x):
            return x[:, None]

        stretch = col(1.0 + self.redshift)
        rest_nm = BAND_WAVELENGTH_NM[cadence.band].astype(np.float64) / stretch  # (N, S)
        ratio = np.clip(rest_nm / REFERENCE_WAVELENGTH_NM, *_WAVELENGTH_RATIO_RANGE)
        scaling = ratio ** col(self.fade_index)
        shape = villar_shape(
            (cadence.mjd_tai - col(self.t0_mjd_tai)) / stretch, col(self.tau_rise_days),
            col(self.tau_fall_days) * scaling, col(self.plateau_days),
            np.minimum(col(self.plateau_drop) / scaling, _MAX_PLATEAU_DROP),
        )
        flux_njy = col(self.peak_ref_njy / self.shape_peak) * self._colour(rest_nm) * shape
        return flux_njy, self.event_mjd_tai


def _draw_uniform(rng, ranges: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Uniform draw per object from the (lo, hi) row of its type, `ranges` (T, 2)."""
    lo, hi = ranges[kind, 0], ranges[kind, 1]
    return lo + (hi - lo) * rng.uniform(0.0, 1.0, len(kind))


def _max_redshift(prior: TransientPrior, survey: Survey) -> float:
    """Redshift past which a 2-sigma bright member at peak stays fainter than m5 in every band.

    Uses the same colours as the light curves (the bluer or redder end of the temperature
    range, whichever is brighter in a band, and the line blanketing) and the typical m5
    plus `_REACH_MARGIN_MAG`, for the scatter of m5 and of the noise.
    """
    z = _REACH_Z_GRID[:, None]
    rest_nm = BAND_WAVELENGTH_NM[survey.band_codes].astype(np.float64) / (1.0 + z)  # (Z, B)
    colour = np.maximum(*(blackbody_ratio(rest_nm, t) for t in prior.temperature_k))
    colour *= np.minimum(rest_nm / prior.uv_cutoff_nm, 1.0) ** 3
    peak_mag = (prior.abs_mag[0] - 2.0 * prior.abs_mag[1] + distance_modulus_mag(z)
                - 2.5 * np.log10((1.0 + z) * colour))
    m5_mag = BAND_DEPTH_5SIGMA_MAG[survey.band_codes] + survey.depth_offset_mag + _REACH_MARGIN_MAG
    reachable = np.any(peak_mag <= m5_mag, axis=1)
    return float(_REACH_Z_GRID[reachable].max(initial=_REACH_Z_GRID[0]))


def draw_transients(mixture: str, rng: np.random.Generator, event_mjd_tai: np.ndarray, survey: Survey):
    """Draw transients of one class, peaking at the given times.

    Parameters
    ----------
    mixture : str
        A key of `TRANSIENT_MIXTURES`, e.g. ``"SN Ia"``.
    rng : numpy.random.Generator
    event_mjd_tai : (N,) ndarray
        Observed time of peak at the reference wavelength, MJD TAI.
    survey : Survey
        Sets the redshift reach.

    Returns
    -------
    TransientPopulation
    """
    priors, fractions = zip(*TRANSIENT_MIXTURES[mixture])
    n = len(event_mjd_tai)
    # Each type is drawn out to its own reach, in proportion to its rate in that volume.
    z_max = np.array([_max_redshift(p, survey) for p in priors])
    in_reach = np.asarray(fractions) * comoving_rate_fraction(z_max)
    kind = rng.choice(len(priors), size=n, p=in_reach / in_reach.sum())

    def table(field):
        return np.array([getattr(p, field) for p in priors], dtype=np.float64)

    redshift = sample_redshift(rng, n, _Z_MIN, z_max[kind])
    abs_mag = table("abs_mag")[kind, 0] + table("abs_mag")[kind, 1] * rng.standard_normal(n)
    shape = {f: _draw_uniform(rng, table(f), kind) for f in
             ("tau_rise_days", "tau_fall_days", "plateau_days", "plateau_drop")}
    dt_peak_days, shape_peak = villar_peak(*shape.values())
    apparent_mag = abs_mag + distance_modulus_mag(redshift) - 2.5 * np.log10(1.0 + redshift)
    return TransientPopulation(
        redshift=redshift,
        event_mjd_tai=event_mjd_tai,
        lead_days=(6.0 * shape["tau_rise_days"] + dt_peak_days) * (1.0 + redshift) + 2.0,
        template_flux_njy=np.zeros((n, len(BAND_NAMES))),
        t0_mjd_tai=event_mjd_tai - dt_peak_days * (1.0 + redshift),
        peak_ref_njy=mag_to_njy(apparent_mag),
        shape_peak=shape_peak,
        temperature_k=_draw_uniform(rng, table("temperature_k"), kind),
        fade_index=_draw_uniform(rng, table("fade_index"), kind),
        uv_cutoff_nm=table("uv_cutoff_nm")[kind],
        **shape,
    )

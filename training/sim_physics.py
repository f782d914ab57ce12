"""Physics shared by the simulator's classes: magnitudes, blackbodies, cosmology, light-curve shapes.

Everything here is a vectorised numpy function of arrays that broadcast; units are in
the names (``_nm``, ``_k``, ``_days``, ``_njy``, ``_mag``).
"""
from functools import lru_cache

import numpy as np

from models.bands import AB_ZERO_POINT_NJY_MAG

_LN10_OVER_2P5 = np.log(10.0) / 2.5
# h c / k in nm K, the scale of the Planck exponent.
HC_OVER_K_NM_K = 1.438777e7
# Rest-frame wavelength at which the simulator's absolute magnitudes are defined (between B and V).
REFERENCE_WAVELENGTH_NM = 500.0
# Redshift grid for the Planck18 look-up tables (interpolated, built once).
_Z_GRID = np.linspace(0.001, 4.0, 4000)


def mag_to_njy(mag):
    """AB magnitude -> flux density in nJy.

    >>> float(mag_to_njy(31.4))
    1.0
    """
    return np.exp(_LN10_OVER_2P5 * (AB_ZERO_POINT_NJY_MAG - np.asarray(mag, dtype=np.float64)))


def njy_to_mag(flux_njy):
    """Flux density in nJy (positive) -> AB magnitude.

    >>> float(njy_to_mag(1.0))
    31.4
    """
    return AB_ZERO_POINT_NJY_MAG - 2.5 * np.log10(flux_njy)


def blackbody_ratio(wavelength_nm, temperature_k, reference_nm=REFERENCE_WAVELENGTH_NM):
    """B_nu(wavelength, T) / B_nu(reference, T): the f_nu colour of a blackbody.

    Parameters
    ----------
    wavelength_nm, temperature_k, reference_nm : array_like, broadcastable
        Wavelengths in nm and temperature in K.

    Returns
    -------
    ndarray
        Dimensionless ratio of f_nu at `wavelength_nm` to f_nu at `reference_nm`.

    >>> round(float(blackbody_ratio(500.0, 10_000.0)), 6)
    1.0
    """
    x = HC_OVER_K_NM_K / (np.asarray(wavelength_nm, dtype=np.float64) * temperature_k)
    x_ref = HC_OVER_K_NM_K / (np.asarray(reference_nm, dtype=np.float64) * temperature_k)
    return (x / x_ref) ** 3 * np.expm1(x_ref) / np.expm1(x)


def blackbody_contrast(wavelength_nm, hot_k, cool_k):
    """B_nu(wavelength, T_hot) / B_nu(wavelength, T_cool): surface-brightness ratio of two blackbodies.

    >>> round(float(blackbody_contrast(367.1, 10_000.0, 3_000.0)))
    9558
    """
    x_unit = HC_OVER_K_NM_K / np.asarray(wavelength_nm, dtype=np.float64)
    return np.expm1(x_unit / cool_k) / np.expm1(x_unit / hot_k)


@lru_cache(maxsize=1)
def _cosmology_tables() -> tuple[np.ndarray, np.ndarray]:
    """Planck18 distance modulus (mag) and cumulative dN/dz ∝ (dV_c/dz)/(1+z) on `_Z_GRID`.

    The comoving distance is integrated here from astropy's Planck18 E(z) (trapezoid rule
    on a fine grid), because astropy's own integrator needs scipy, which the project does
    not depend on. Planck18 is flat, so D_M = D_C and dV_c/dz/dOmega = D_H D_C^2 / E(z).
    """
    import astropy.units as u
    from astropy.cosmology import Planck18

    z_fine = np.linspace(0.0, _Z_GRID[-1], 16 * len(_Z_GRID) + 1)
    inv_e = 1.0 / Planck18.efunc(z_fine)
    steps = 0.5 * (inv_e[1:] + inv_e[:-1]) * np.diff(z_fine)
    hubble_mpc = Planck18.hubble_distance.to_value(u.Mpc)
    comoving_mpc = hubble_mpc * np.interp(_Z_GRID, z_fine, np.concatenate([[0.0], np.cumsum(steps)]))
    distmod_mag = 5.0 * np.log10((1.0 + _Z_GRID) * comoving_mpc) + 25.0
    # A constant comoving rate per unit observer time: volume element over time dilation.
    rate = hubble_mpc * comoving_mpc**2 / Planck18.efunc(_Z_GRID) / (1.0 + _Z_GRID)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(_Z_GRID))])
    return distmod_mag, cdf / cdf[-1]


def distance_modulus_mag(redshift):
    """Planck18 distance modulus in mag, interpolated on a grid (z in 0.001-4).

    >>> round(float(distance_modulus_mag(0.1)), 1)
    38.4
    """
    return np.interp(redshift, _Z_GRID, _cosmology_tables()[0])


def comoving_rate_fraction(redshift):
    """Fraction of a constant comoving rate's events (per observer time) below `redshift` (<= 4).

    >>> float(comoving_rate_fraction(4.0))
    1.0
    """
    return np.interp(redshift, _Z_GRID, _cosmology_tables()[1])


def sample_redshift(rng: np.random.Generator, n: int, z_min, z_max) -> np.ndarray:
    """Draw `n` redshifts for a constant comoving rate, dN/dz ∝ (dV_c/dz)/(1+z), in [z_min, z_max].

    `z_min` and `z_max` are scalars or (n,) arrays (one range per object).
    """
    u = rng.uniform(comoving_rate_fraction(z_min), comoving_rate_fraction(z_max), n)
    return np.interp(u, _cosmology_tables()[1], _Z_GRID)


def log_uniform(rng: np.random.Generator, lo: float, hi: float, size) -> np.ndarray:
    """Draw from a log-uniform distribution on [lo, hi]."""
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def power_law(rng: np.random.Generator, index, lo: float, hi: float, size) -> np.ndarray:
    """Draw x with dN/dx ∝ x^-index on [lo, hi] (index != 1), by inverting the CDF."""
    a = 1.0 - np.asarray(index, dtype=np.float64)
    u = rng.uniform(0.0, 1.0, size)
    return (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)


def villar_shape(dt_days, tau_rise_days, tau_fall_days, plateau_days, plateau_drop):
    """Villar et al. (2019) transient shape, unnormalised, with a linear plateau from t0.

    f = (1 - drop min(dt, gamma)/gamma) / (1 + exp(-dt/tau_rise)) * exp(-max(dt - gamma, 0)/tau_fall),
    the Villar form with beta = -drop/gamma, so the flux falls by the fraction `plateau_drop`
    over the plateau of `plateau_days` and then declines exponentially.

    Parameters
    ----------
    dt_days : array_like
        Time since t0 in days (rest frame of the source).
    tau_rise_days, tau_fall_days, plateau_days : array_like
        Logistic rise time, exponential fall time and plateau length gamma, in days.
    plateau_drop : array_like
        Fractional decline over the plateau (0 for none).
    """
    rise = 1.0 / (1.0 + np.exp(np.clip(-dt_days / tau_rise_days, -60.0, 60.0)))
    on_plateau = np.clip(dt_days, 0.0, plateau_days) / np.maximum(plateau_days, 1e-6)
    fall = np.exp(-np.maximum(dt_days - plateau_days, 0.0) / tau_fall_days)
    return rise * (1.0 - plateau_drop * on_plateau) * fall


def villar_peak(tau_rise_days, tau_fall_days, plateau_days, plateau_drop, n_grid: int = 160):
    """Time and value of the maximum of `villar_shape`, found on a grid per object.

    Parameters
    ----------
    tau_rise_days, tau_fall_days, plateau_days, plateau_drop : (N,) ndarray
        Shape parameters, as in `villar_shape`.

    Returns
    -------
    dt_peak_days, peak : (N,) ndarray
        Time of the maximum after t0 in days, and the shape's value there.
    """
    frac = np.linspace(0.0, 1.0, n_grid)
    lo = -2.0 * tau_rise_days
    hi = plateau_days + 8.0 * tau_rise_days
    dt = lo[:, None] + frac * (hi - lo)[:, None]  # (N, n_grid)
    shape = villar_shape(dt, *(p[:, None] for p in (tau_rise_days, tau_fall_days, plateau_days, plateau_drop)))
    best = np.argmax(shape, axis=1)
    rows = np.arange(len(best))
    return dt[rows, best], shape[rows, best]


def davenport_flare(x):
    """Davenport et al. (2014) white-light flare template, peak 1 at x = 0.

    Parameters
    ----------
    x : array_like
        (t - t_peak) / t_half, time in units of the flare's full width at half maximum.
    """
    x = np.asarray(x, dtype=np.float64)
    rise = 1.0 + x * (1.94053 + x * (-0.175084 + x * (-2.24588 + x * -1.12498)))
    xd = np.maximum(x, 0.0)
    decay = 0.689008 * np.exp(-1.60053 * xd) + 0.302963 * np.exp(-0.278318 * xd)
    return np.where(x > 0.0, decay, np.where(x > -1.0, rise, 0.0))


def noise_sigma_njy(total_flux_njy, flux5_njy, gamma: float = 0.039, floor_mag: float = 0.005):
    """1-sigma difference-flux error in nJy (Ivezic et al. 2019, written in flux).

    sigma^2 = (F5/5)^2 (1 + (0.04 - gamma)/gamma * F/F5) + (floor * ln10/2.5 * F)^2: the sky term
    F5/5 at the 5-sigma limiting flux F5, the source's Poisson term in the ratio of Ivezic's
    coefficients, and a systematic floor of `floor_mag` mag.

    Parameters
    ----------
    total_flux_njy : array_like
        Flux of the source in the science image (template plus difference), nJy; clipped at 0.
    flux5_njy : array_like
        5-sigma limiting flux of the visit (the flux of its m5), nJy.

    >>> round(float(noise_sigma_njy(0.0, 1.0)), 3)
    0.2
    """
    source_njy = np.maximum(total_flux_njy, 0.0)
    sky_and_source = (flux5_njy / 5.0) ** 2 * (1.0 + (0.04 - gamma) / gamma * source_njy / flux5_njy)
    systematic = (floor_mag * _LN10_OVER_2P5 * source_njy) ** 2
    return np.sqrt(sky_and_source + systematic)

"""Variables and fast Galactic transients: M-dwarf flares, dwarf novae, AGN, RR Lyrae, EBs.

Each has a template (quiescent or time-averaged) flux in every band, so the
difference flux of a variable can be negative. Galactic objects have redshift 0 and
an AB magnitude drawn uniformly (no Galactic model, no extinction). The ``draw_*``
functions share the signature of `training.sim_transients.draw_transients` (less the
mixture); the survey does not change what they draw.
"""
from dataclasses import dataclass

import numpy as np

from models.bands import BAND_CODE, BAND_WAVELENGTH_NM
from training.sim_physics import (
    blackbody_contrast, blackbody_ratio, davenport_flare, log_uniform, mag_to_njy, power_law,
    sample_redshift, villar_peak, villar_shape,
)
from training.sim_survey import Cadence, Population, Survey

_G_NM = float(BAND_WAVELENGTH_NM[BAND_CODE["lsst-g"]])
_R_NM = float(BAND_WAVELENGTH_NM[BAND_CODE["lsst-r"]])
_MINUTES_PER_DAY = 1440.0
# Spacing of rows when events of many objects are searched in one sorted array, days;
# event times are kept within (-_ROW_STRIDE_DAYS/2, _ROW_STRIDE_DAYS/2) of a row's window start.
_ROW_STRIDE_DAYS = 1.0e6
_UNUSED_EVENT_DAYS = 0.25 * _ROW_STRIDE_DAYS


def _col(x):
    return np.asarray(x)[:, None]


def _caught_visit_mjd(rng, cadence: Cadence, anchor_mjd_tai: np.ndarray, catch_days: float) -> np.ndarray:
    """(N,) time of a random visit in the `catch_days` after each anchor, else anywhere in the window (MJD TAI)."""
    after_anchor = cadence.mjd_tai - _col(anchor_mjd_tai)
    eligible = cadence.valid & (after_anchor >= 0.0) & (after_anchor < catch_days)
    score = rng.uniform(0.0, 1.0, cadence.valid.shape) + cadence.valid + eligible
    visit = np.argmax(score, axis=1)
    return cadence.mjd_tai[np.arange(len(visit)), visit]


def _band_nm(cadence: Cadence) -> np.ndarray:
    return BAND_WAVELENGTH_NM[cadence.band].astype(np.float64)


def _template_at(population: Population, cadence: Cadence) -> np.ndarray:
    """(N, S) template flux of each slot's band, nJy."""
    return np.take_along_axis(population.template_flux_njy, cadence.band.astype(np.intp), axis=1)


def _galactic(n: int, event_mjd_tai, template_flux_njy) -> dict:
    """The `Population` fields shared by Galactic objects (z = 0, no lead time)."""
    return dict(redshift=np.zeros(n), event_mjd_tai=event_mjd_tai, lead_days=np.zeros(n),
                template_flux_njy=template_flux_njy)


def _neighbour_events(event_days: np.ndarray, t_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the last event at or before, and the first after, each time, row by row.

    Parameters
    ----------
    event_days : (N, K) ndarray
        Event times of each row, sorted, relative to the row's window start, days.
    t_days : (N, S) ndarray
        Query times on the same scale.

    Returns
    -------
    previous, following : (N, S) int ndarray
        Event indices in 0..K-1, or -1 / K where there is none.
    """
    n, k = event_days.shape
    row_offset_days = _ROW_STRIDE_DAYS * np.arange(n)[:, None]
    keys = (event_days + row_offset_days).ravel()
    count = np.searchsorted(keys, (t_days + row_offset_days).ravel(), side="right").reshape(t_days.shape)
    following = count - k * np.arange(n)[:, None]
    return following - 1, following


def _sum_neighbours(pulse, event_days: np.ndarray, t_days: np.ndarray) -> np.ndarray:
    """Sum ``pulse(dt_days, index)`` over the previous and the following event of each time.

    Pulses that reach further than their neighbours are cut: fine for short flares and outbursts.
    """
    k = event_days.shape[1]
    total = np.zeros_like(t_days)
    for index in _neighbour_events(event_days, t_days):
        inside = (index >= 0) & (index < k)
        safe = np.clip(index, 0, k - 1)
        dt_days = t_days - np.take_along_axis(event_days, safe, axis=1)
        total += np.where(inside, pulse(dt_days, safe), 0.0)
    return total


def _recurrent_times(rng, interval_days: np.ndarray, anchor_days: np.ndarray, span_days: float) -> np.ndarray:
    """(N, K) sorted event times with jittered intervals, one exactly at each row's anchor.

    Events are placed before and after `anchor_days` (relative to the window start) until
    they cover [-interval, span_days + interval]; surplus slots hold `_UNUSED_EVENT_DAYS`.
    """
    n_side = int(np.ceil(span_days / np.min(interval_days))) + 2
    jitter = rng.uniform(0.8, 1.2, (len(interval_days), 2 * n_side))
    steps = _col(interval_days) * jitter
    before = _col(anchor_days) - np.cumsum(steps[:, :n_side], axis=1)[:, ::-1]
    after = _col(anchor_days) + np.cumsum(steps[:, n_side:], axis=1)
    times = np.concatenate([before, _col(anchor_days), after], axis=1)
    reach = _col(interval_days) * 1.25
    return np.sort(np.where((times > -reach) & (times < span_days + reach), times, _UNUSED_EVENT_DAYS), axis=1)


# --- M-dwarf flares -------------------------------------------------------------------
_MAX_EXTRA_FLARES = 16
_CATCH_DAYS = 60.0


@dataclass(frozen=True)
class FlarePopulation(Population):
    """M dwarfs (blackbody `star_k`) flaring as `flare_k` blackbodies with the Davenport template.

    Flare k covers a fraction `filling[:, k]` of the disc and has half-width `t_half_days[:, k]`.
    Flare 0 is the one a visit catches (placed on a visit when the flux is computed); the
    others fall at random, `flare_rate_per_day` on average.
    """

    star_k: np.ndarray
    flare_k: np.ndarray
    flare_rate_per_day: np.ndarray
    t_half_days: np.ndarray
    filling: np.ndarray

    def _caught_flare_days(self, rng, cadence: Cadence) -> np.ndarray:
        """(N,) peak of flare 0 relative to the window start, on a random visit.

        The visit is drawn from the `_CATCH_DAYS` after the anchor epoch, or from the whole
        window if that falls out of season. Placing the flare on a visit conditions on what
        the survey selects anyway: a flare no visit sees never becomes an alert.
        """
        visit_mjd = _caught_visit_mjd(rng, cadence, self.event_mjd_tai, _CATCH_DAYS)
        visit_phase = rng.uniform(-1.0, 5.0, len(visit_mjd))  # (t_visit - t_peak) / t_half
        return visit_mjd - visit_phase * self.t_half_days[:, 0] - cadence.start_mjd_tai

    def difference_flux_njy(self, rng, cadence: Cadence):
        span_days = cadence.stop_mjd_tai - cadence.start_mjd_tai
        n_extra = np.minimum(rng.poisson(self.flare_rate_per_day * span_days), _MAX_EXTRA_FLARES)
        extra = rng.uniform(0.0, 1.0, (len(span_days), _MAX_EXTRA_FLARES)) * _col(span_days)
        extra = np.where(np.arange(_MAX_EXTRA_FLARES) < _col(n_extra), extra, _UNUSED_EVENT_DAYS)
        caught_days = self._caught_flare_days(rng, cadence)
        peak_days = np.concatenate([_col(caught_days), extra], axis=1)
        order = np.argsort(peak_days, axis=1)
        peak_days = np.take_along_axis(peak_days, order, axis=1)
        t_half = np.take_along_axis(self.t_half_days, order, axis=1)
        filling = np.take_along_axis(self.filling, order, axis=1)

        def pulse(dt_days, index):
            return (np.take_along_axis(filling, index, axis=1)
                    * davenport_flare(dt_days / np.take_along_axis(t_half, index, axis=1)))

        t_days = cadence.mjd_tai - _col(cadence.start_mjd_tai)
        contrast = blackbody_contrast(_band_nm(cadence), _col(self.flare_k), _col(self.star_k)) - 1.0
        flux_njy = _template_at(self, cadence) * contrast * _sum_neighbours(pulse, peak_days, t_days)
        return flux_njy, cadence.start_mjd_tai + caught_days


def draw_flares(rng: np.random.Generator, event_mjd_tai: np.ndarray, survey: Survey) -> FlarePopulation:
    """Draw flaring M dwarfs: quiescent r 16-24 mag, 2800-3500 K; flares 9-11 kK.

    Flare energies follow dN/dE ∝ E^-alpha (alpha 1.5-2); the energy is taken as
    filling factor x t_half (peak luminosity x duration), so the filling factor of a flare
    is its energy over its half-width (t_half log-uniform in 1-30 min).
    """
    n = len(event_mjd_tai)
    n_flares = 1 + _MAX_EXTRA_FLARES
    star_k = rng.uniform(2_800.0, 3_500.0, n)
    r_mag = rng.uniform(16.0, 24.0, n)
    template = mag_to_njy(r_mag)[:, None] * blackbody_ratio(BAND_WAVELENGTH_NM, _col(star_k), _R_NM)
    t_half_min = log_uniform(rng, 1.0, 30.0, (n, n_flares))
    alpha = rng.uniform(1.5, 2.0, (n, 1))
    energy_min = power_law(rng, alpha, 3.0e-4, 3.0, (n, n_flares))  # filling factor x minutes
    return FlarePopulation(
        **_galactic(n, event_mjd_tai, template),
        star_k=star_k,
        flare_k=rng.uniform(9_000.0, 11_000.0, n),
        flare_rate_per_day=log_uniform(rng, 0.003, 0.1, n),
        t_half_days=t_half_min / _MINUTES_PER_DAY,
        filling=np.minimum(energy_min / t_half_min, 0.3),
    )


# --- Dwarf novae ----------------------------------------------------------------------
@dataclass(frozen=True)
class DwarfNovaPopulation(Population):
    """Dwarf novae: recurrent outbursts of `amplitude_mag` in g, one peaking at the event.

    Each outburst has a Villar shape (days) and brightens the `quiescent_k` blackbody by a
    hotter `outburst_k` one; each outburst's amplitude varies by 0.3 mag rms.
    """

    quiescent_k: np.ndarray
    outburst_k: np.ndarray
    amplitude_mag: np.ndarray
    recurrence_days: np.ndarray
    tau_rise_days: np.ndarray
    tau_fall_days: np.ndarray
    plateau_days: np.ndarray
    plateau_drop: np.ndarray
    dt_peak_days: np.ndarray
    shape_peak: np.ndarray

    def difference_flux_njy(self, rng, cadence: Cadence):
        anchor_days = self.event_mjd_tai - self.dt_peak_days - cadence.start_mjd_tai
        span_days = float(np.max(cadence.stop_mjd_tai - cadence.start_mjd_tai))
        t0_days = _recurrent_times(rng, self.recurrence_days, anchor_days, span_days)
        excess = 10.0 ** (0.4 * (_col(self.amplitude_mag) + 0.3 * rng.standard_normal(t0_days.shape))) - 1.0
        shape = [_col(p) for p in (self.tau_rise_days, self.tau_fall_days, self.plateau_days, self.plateau_drop)]

        def pulse(dt_days, index):
            return np.take_along_axis(excess, index, axis=1) * villar_shape(dt_days, *shape)

        t_days = cadence.mjd_tai - _col(cadence.start_mjd_tai)
        band_nm = _band_nm(cadence)
        colour = (blackbody_ratio(band_nm, _col(self.outburst_k), _G_NM)
                  / blackbody_ratio(band_nm, _col(self.quiescent_k), _G_NM))
        outbursts = _sum_neighbours(pulse, t0_days, t_days) / _col(self.shape_peak)
        return _template_at(self, cadence) * colour * outbursts, self.event_mjd_tai


def draw_dwarf_novae(rng: np.random.Generator, event_mjd_tai: np.ndarray, survey: Survey) -> DwarfNovaPopulation:
    """Draw dwarf novae: quiescent g 18-26 mag, outbursts of 2-5 mag lasting days, every 10-300 d."""
    n = len(event_mjd_tai)
    quiescent_k = rng.uniform(6_000.0, 10_000.0, n)
    g_mag = rng.uniform(18.0, 26.0, n)
    template = mag_to_njy(g_mag)[:, None] * blackbody_ratio(BAND_WAVELENGTH_NM, _col(quiescent_k), _G_NM)
    shape = dict(tau_rise_days=rng.uniform(0.2, 1.0, n), tau_fall_days=rng.uniform(0.5, 2.5, n),
                 plateau_days=rng.uniform(1.0, 8.0, n), plateau_drop=rng.uniform(0.0, 0.3, n))
    dt_peak_days, shape_peak = villar_peak(*shape.values())
    duration_days = shape["plateau_days"] + 4.0 * (shape["tau_rise_days"] + shape["tau_fall_days"])
    return DwarfNovaPopulation(
        **_galactic(n, event_mjd_tai, template),
        quiescent_k=quiescent_k,
        outburst_k=rng.uniform(12_000.0, 20_000.0, n),
        amplitude_mag=rng.uniform(2.0, 5.0, n),
        recurrence_days=np.maximum(log_uniform(rng, 10.0, 300.0, n), 2.0 * duration_days),
        dt_peak_days=dt_peak_days,
        shape_peak=shape_peak,
        **shape,
    )


# --- AGN ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgnPopulation(Population):
    """AGN: a damped random walk in magnitude, `sigma_mag` rms in g, damping time `tau_days` (observed).

    Every band sees the same walk, scaled by (lambda_g / lambda)^0.5 (bluer when
    brighter). The template is the flux at the mean magnitude.
    """

    tau_days: np.ndarray
    sigma_mag: np.ndarray

    def difference_flux_njy(self, rng, cadence: Cadence):
        t_days = cadence.mjd_tai - _col(cadence.start_mjd_tai)  # (N, S), sorted
        tau = _col(self.tau_days)
        decay = np.exp(-np.diff(t_days, axis=1) / tau)
        kicks = rng.standard_normal(t_days.shape)
        kicks[:, 1:] *= np.sqrt(1.0 - decay**2)
        # x_k = sum_j kick_j exp(-(t_k - t_j)/tau): the exact Ornstein-Uhlenbeck update, as one cumsum.
        walk = np.exp(-t_days / tau) * np.cumsum(kicks * np.exp(t_days / tau), axis=1)
        delta_mag = walk * _col(self.sigma_mag) * np.sqrt(_G_NM / _band_nm(cadence))
        flux_njy = _template_at(self, cadence) * (10.0 ** (-0.4 * delta_mag) - 1.0)
        return flux_njy, self.event_mjd_tai


def draw_agn(rng: np.random.Generator, event_mjd_tai: np.ndarray, survey: Survey) -> AgnPopulation:
    """Draw AGN: z for a constant comoving density in 0.05-3, mean g 18-24.5 mag, f_nu ∝ nu^-0.5,
    rest-frame tau 100-1000 d (log-uniform), sigma 0.1-0.3 mag."""
    n = len(event_mjd_tai)
    redshift = sample_redshift(rng, n, 0.05, 3.0)
    g_njy = mag_to_njy(rng.uniform(18.0, 24.5, n))
    template = g_njy[:, None] * np.sqrt(BAND_WAVELENGTH_NM / _G_NM)
    return AgnPopulation(
        redshift=redshift, event_mjd_tai=event_mjd_tai, lead_days=np.zeros(n), template_flux_njy=template,
        tau_days=log_uniform(rng, 100.0, 1000.0, n) * (1.0 + redshift),
        sigma_mag=rng.uniform(0.1, 0.3, n),
    )


# --- Periodic variables ---------------------------------------------------------------
def _phase(cadence: Cadence, epoch_mjd_tai, period_days) -> np.ndarray:
    """(N, S) phase in [0, 1) of each slot."""
    return np.mod((cadence.mjd_tai - _col(epoch_mjd_tai)) / _col(period_days), 1.0)


@dataclass(frozen=True)
class RRLyraePopulation(Population):
    """RR Lyrae: a sawtooth in magnitude, maximum light at the event epoch.

    The magnitude fades linearly for 1 - `rise_fraction` of the period and rises linearly
    for the rest; the amplitude is `amplitude_mag` in g and scales as lambda^-1 (A_V/A_B
    about 0.8). The template is the time-averaged flux.
    """

    period_days: np.ndarray
    amplitude_mag: np.ndarray
    rise_fraction: np.ndarray

    def difference_flux_njy(self, rng, cadence: Cadence):
        phase = _phase(cadence, self.event_mjd_tai, self.period_days)
        rise = _col(self.rise_fraction)
        fading = phase < 1.0 - rise
        # Position in the magnitude range: 0 at maximum light, 1 at minimum.
        depth = np.where(fading, phase / (1.0 - rise), (1.0 - phase) / rise)
        amplitude = _col(self.amplitude_mag) * _G_NM / _band_nm(cadence)
        delta_mag = amplitude * (depth - 0.5)
        # Both ramps are linear in magnitude, so the time-averaged flux is that of a uniform
        # magnitude spread: sinh(0.2 ln10 A) / (0.2 ln10 A) times the flux at the middle.
        half_log = 0.2 * np.log(10.0) * amplitude
        mean_factor = np.sinh(half_log) / half_log
        flux_njy = _template_at(self, cadence) * (10.0 ** (-0.4 * delta_mag) / mean_factor - 1.0)
        return flux_njy, self.event_mjd_tai


def draw_rr_lyrae(rng: np.random.Generator, event_mjd_tai: np.ndarray, survey: Survey) -> RRLyraePopulation:
    """Draw RR Lyrae: mean g 14-22.5 mag, 6000-7500 K, period 0.2-1 d, g amplitude 0.5-1 mag."""
    n = len(event_mjd_tai)
    template = (mag_to_njy(rng.uniform(14.0, 22.5, n))[:, None]
                * blackbody_ratio(BAND_WAVELENGTH_NM, rng.uniform(6_000.0, 7_500.0, (n, 1)), _G_NM))
    return RRLyraePopulation(
        **_galactic(n, event_mjd_tai, template),
        period_days=rng.uniform(0.2, 1.0, n),
        amplitude_mag=rng.uniform(0.5, 1.0, n),
        rise_fraction=rng.uniform(0.1, 0.2, n),
    )


@dataclass(frozen=True)
class EclipsingBinaryPopulation(Population):
    """Detached eclipsing binaries on circular orbits, primary eclipse at the event epoch.

    Eclipses are Gaussian dips of rms width `width_phase`: the primary removes the fraction
    `primary_depth` of the light in every band; the secondary (phase 0.5) removes that
    times the surface-brightness ratio of the cooler to the hotter star, B(T2)/B(T1).
    The template is the time-averaged flux.
    """

    period_days: np.ndarray
    primary_depth: np.ndarray
    width_phase: np.ndarray
    hot_k: np.ndarray
    cool_k: np.ndarray

    def difference_flux_njy(self, rng, cadence: Cadence):
        phase = _phase(cadence, self.event_mjd_tai, self.period_days)
        width = _col(self.width_phase)

        def dip(centre):
            offset = np.mod(phase - centre + 0.5, 1.0) - 0.5
            return np.exp(-0.5 * (offset / width) ** 2)

        primary = _col(self.primary_depth)
        secondary = primary / blackbody_contrast(_band_nm(cadence), _col(self.hot_k), _col(self.cool_k))
        relative = 1.0 - primary * dip(0.0) - secondary * dip(0.5)
        mean_relative = _mean_relative_flux(primary, secondary, width)
        return _template_at(self, cadence) * (relative / mean_relative - 1.0), self.event_mjd_tai


def _mean_relative_flux(primary, secondary, width_phase):
    """Time average of 1 - primary dip - secondary dip (Gaussian dips narrower than the period)."""
    return 1.0 - (primary + secondary) * width_phase * np.sqrt(2.0 * np.pi)


def draw_eclipsing_binaries(rng: np.random.Generator, event_mjd_tai: np.ndarray,
                            survey: Survey) -> EclipsingBinaryPopulation:
    """Draw EBs: out-of-eclipse g 15-23 mag, period 0.3-10 d (log-uniform), primary depth
    10-70 %, eclipse rms width 1.5-6 % of the period, T1 4500-9000 K, T2/T1 0.5-1."""
    n = len(event_mjd_tai)
    hot_k = rng.uniform(4_500.0, 9_000.0, n)
    out_of_eclipse = mag_to_njy(rng.uniform(15.0, 23.0, n))[:, None] * blackbody_ratio(
        BAND_WAVELENGTH_NM, _col(hot_k), _G_NM)
    primary = rng.uniform(0.1, 0.7, n)
    width = rng.uniform(0.015, 0.06, n)
    cool_k = hot_k * rng.uniform(0.5, 1.0, n)
    secondary = _col(primary) / blackbody_contrast(BAND_WAVELENGTH_NM, _col(hot_k), _col(cool_k))
    mean_relative = _mean_relative_flux(_col(primary), secondary, _col(width))  # (n, n_bands)
    return EclipsingBinaryPopulation(
        **_galactic(n, event_mjd_tai, out_of_eclipse * mean_relative),
        period_days=log_uniform(rng, 0.3, 10.0, n),
        primary_depth=primary, width_phase=width, hot_k=hot_k, cool_k=cool_k,
    )


# --- Asteroids ------------------------------------------------------------------------
ASTEROID_MAG = {"lsst": (18.0, 24.0), "ztf": (16.0, 20.5)}  # uniform apparent magnitude, any band


@dataclass(frozen=True)
class AsteroidPopulation(Population):
    """Asteroids: a point source seen at one visit only, at `mag` AB in every band (solar colours
    are close to flat at this precision); before and after, the position is empty. Its event is
    that visit, drawn like a flare's (`_caught_visit_mjd`)."""

    mag: np.ndarray

    def difference_flux_njy(self, rng, cadence: Cadence):
        visit_mjd = _caught_visit_mjd(rng, cadence, self.event_mjd_tai, _CATCH_DAYS)
        at_visit = cadence.valid & (cadence.mjd_tai == _col(visit_mjd))
        return np.where(at_visit, _col(mag_to_njy(self.mag)), 0.0), visit_mjd


def draw_asteroids(rng: np.random.Generator, event_mjd_tai: np.ndarray, survey: Survey) -> AsteroidPopulation:
    """Draw asteroids of `ASTEROID_MAG` for the survey; no template (nothing at the position)."""
    n = len(event_mjd_tai)
    return AsteroidPopulation(**_galactic(n, event_mjd_tai, np.zeros((n, len(BAND_WAVELENGTH_NM)))),
                              mag=rng.uniform(*ASTEROID_MAG[survey.name], n))

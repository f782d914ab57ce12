"""Tests of the light-curve simulator (training.simulate and its sim_* modules)."""
import numpy as np
import pytest

from models import taxonomy
from models.bands import BAND_CODE
from models.lightcurve import LightCurve
from training.sim_physics import distance_modulus_mag, mag_to_njy, noise_sigma_njy, njy_to_mag
from training.sim_survey import LSST, Cadence, draw_cadence, sample_sky
from training.sim_variables import draw_flares
from training.simulate import CLASS_IDS, POINT_ID_STRIDE, REALISTIC_MIX, SimulatedSet, simulate

N_PER_CLASS = 30
GALACTIC = {CLASS_IDS[c] for c in ("M-dwarf flare", "dwarf nova", "RR Lyrae", "EB")}
SOLAR_SYSTEM = {CLASS_IDS["asteroid"]}  # z = 0, no template
VARIABLES = {CLASS_IDS[c] for c in ("AGN", "RR Lyrae", "EB")}
SNR_TOLERANCE = 1e-4  # the flag is set in float64, the stored flux and error are float32


@pytest.fixture(scope="module")
def lsst() -> SimulatedSet:
    return simulate(N_PER_CLASS * len(CLASS_IDS), np.random.default_rng(20260101))


@pytest.fixture(scope="module")
def ztf() -> SimulatedSet:
    return simulate(N_PER_CLASS * len(CLASS_IDS), np.random.default_rng(7), survey="ztf")


def _object_of_point(sims: SimulatedSet) -> np.ndarray:
    return np.repeat(np.arange(len(sims)), np.diff(sims.offsets))


def _first_detection_mjd(sims: SimulatedSet) -> np.ndarray:
    """(N,) time of each object's first detection."""
    masked = np.where(sims.is_detection, sims.mjd_tai, np.inf)
    return np.minimum.reduceat(masked, sims.offsets[:-1])


def _assert_same_arrays(a: SimulatedSet, b: SimulatedSet) -> None:
    for name in ("class_id", "object_id", "redshift", "ra_deg", "dec_deg", "event_mjd_tai", "template_flux_njy",
                 "offsets", *LightCurve.FIELDS):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# --- determinism --------------------------------------------------------------------
def test_same_seed_gives_identical_arrays():
    _assert_same_arrays(simulate(44, np.random.default_rng(3)), simulate(44, np.random.default_rng(3)))


def test_different_seeds_differ():
    a, b = simulate(44, np.random.default_rng(3)), simulate(44, np.random.default_rng(4))
    assert a.n_points != b.n_points or not np.array_equal(a.flux_njy, b.flux_njy)


def test_saved_rng_state_reproduces_the_set():
    sims = simulate(22, np.random.default_rng(11), survey="ztf")
    rng = np.random.default_rng()
    rng.bit_generator.state = sims.rng_state
    _assert_same_arrays(sims, simulate(22, rng, survey="ztf"))


# --- class mix ----------------------------------------------------------------------
def test_balanced_by_default_with_every_class(lsst):
    ids, counts = np.unique(lsst.class_id, return_counts=True)
    assert set(ids.tolist()) == set(CLASS_IDS.values())
    assert set(counts.tolist()) == {N_PER_CLASS}


def test_class_weights_set_the_mix():
    assert sum(REALISTIC_MIX.values()) == pytest.approx(1.0)
    sims = simulate(300, np.random.default_rng(5), class_weights=REALISTIC_MIX)
    share_ia = np.mean(sims.class_id == CLASS_IDS["SN Ia"])
    expected = REALISTIC_MIX[CLASS_IDS["SN Ia"]]
    assert abs(share_ia - expected) < 4 * np.sqrt(expected * (1 - expected) / 300)


def test_classes_are_the_models_taxonomy():
    assert sorted(CLASS_IDS.values()) == sorted(taxonomy.CLASS_IDS)


def test_classes_subset():
    sims = simulate(20, np.random.default_rng(1), classes=[CLASS_IDS["TDE"], CLASS_IDS["KN"]])
    assert set(sims.class_id.tolist()) == {CLASS_IDS["TDE"], CLASS_IDS["KN"]}


@pytest.mark.parametrize("kwargs", [{"classes": [1234]}, {"class_weights": {2222: 1.0, 9: 1.0}},
                                    {"survey": "panstarrs"}, {"classes": []}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        simulate(5, np.random.default_rng(0), **kwargs)


# --- structure and validity ---------------------------------------------------------
@pytest.mark.parametrize("survey", ["lsst", "ztf"])
def test_light_curves_are_valid(survey, lsst, ztf):
    sims = lsst if survey == "lsst" else ztf
    assert sims.offsets[0] == 0 and sims.offsets[-1] == sims.n_points
    assert len(np.unique(sims.source_id)) == sims.n_points
    assert len(np.unique(sims.object_id)) == len(sims)
    np.testing.assert_array_equal(sims.source_id // POINT_ID_STRIDE, sims.object_id[_object_of_point(sims)])
    for lc in sims:
        for name, dtype in zip(LightCurve.FIELDS, LightCurve.DTYPES):
            assert getattr(lc, name).dtype == dtype, name
        checked = LightCurve.from_arrays(*(getattr(lc, name) for name in LightCurve.FIELDS))
        for name in LightCurve.FIELDS:  # from_arrays sorts and validates: nothing may change
            np.testing.assert_array_equal(getattr(checked, name), getattr(lc, name), err_msg=name)
        assert np.all(np.diff(lc.mjd_tai) > 0)
        assert lc.is_detection.any()


def test_detection_flag_is_five_sigma(lsst):
    snr = np.abs(lsst.flux_njy.astype(np.float64) / lsst.flux_err_njy)
    assert np.all(snr[lsst.is_detection] >= 5.0 * (1 - SNR_TOLERANCE))
    assert np.all(snr[~lsst.is_detection] < 5.0 * (1 + SNR_TOLERANCE))


def test_lsst_keeps_forced_photometry_around_first_detection(lsst):
    first = _first_detection_mjd(lsst)[_object_of_point(lsst)]
    dt_days = lsst.mjd_tai - first
    assert dt_days.min() >= -LSST.history_days
    assert dt_days.max() <= 365.0
    assert not lsst.is_detection[dt_days < 0].any()
    assert (~lsst.is_detection[dt_days > 0]).sum() > 0.3 * (dt_days > 0).sum()  # forced points after
    assert set(np.unique(lsst.band).tolist()) == {BAND_CODE[f"lsst-{b}"] for b in "ugrizy"}


def test_ztf_has_upper_limits_before_and_detections_after(ztf):
    first = _first_detection_mjd(ztf)[_object_of_point(ztf)]
    limits = ~ztf.is_detection
    assert set(np.unique(ztf.band).tolist()) <= {BAND_CODE[b] for b in ("ztf-g", "ztf-r", "ztf-i")}
    assert limits.any() and np.all(ztf.mjd_tai[limits] < first[limits])
    assert np.all(ztf.flux_njy[limits] == 0.0) and np.all(ztf.flux_err_njy > 0)
    # An upper limit's error is F5/5 of a ZTF-depth visit (m5 about 19-22).
    limit_mag = njy_to_mag(5.0 * ztf.flux_err_njy[limits])
    assert 19.0 < np.median(limit_mag) < 21.5


def test_redshift_and_positions(lsst):
    galactic = np.isin(lsst.class_id, list(GALACTIC | SOLAR_SYSTEM))
    assert np.all(lsst.redshift[galactic] == 0.0)
    assert np.all((lsst.redshift[~galactic] > 0.0) & (lsst.redshift[~galactic] < 4.0))
    assert np.all((lsst.ra_deg >= 0) & (lsst.ra_deg < 360) & (lsst.dec_deg >= -90) & (lsst.dec_deg <= 12))
    assert np.all(np.isfinite(lsst.event_mjd_tai))


def test_variables_have_negative_difference_flux(lsst):
    obj = _object_of_point(lsst)
    for class_id in VARIABLES:
        negative = lsst.is_detection & (lsst.flux_njy < 0) & (lsst.class_id[obj] == class_id)
        assert negative.any(), class_id
    transients = ~np.isin(lsst.class_id, list(VARIABLES | GALACTIC))
    assert np.all(lsst.template_flux_njy[transients] == 0.0)
    assert np.all(lsst.template_flux_njy[np.isin(lsst.class_id, list(GALACTIC))] > 0.0)


# --- physics ------------------------------------------------------------------------
def test_sn_ia_peak_matches_absolute_magnitude_plus_distance_modulus():
    """At low z (ZTF), the brightest g detection near peak gives M = -19.3 after mu(z) and K = -2.5 log(1+z)."""
    sims = simulate(150, np.random.default_rng(9), survey="ztf", classes=[CLASS_IDS["SN Ia"]])
    abs_mag = []
    for i, lc in enumerate(sims):
        z = sims.redshift[i]
        near_peak = (lc.is_detection & (lc.band == BAND_CODE["ztf-g"])
                     & (np.abs(lc.mjd_tai - sims.event_mjd_tai[i]) < 3.0 * (1 + z)))
        if near_peak.any():
            apparent = njy_to_mag(lc.flux_njy[near_peak].max())
            abs_mag.append(apparent - distance_modulus_mag(z) + 2.5 * np.log10(1 + z))
    assert np.all(sims.redshift < 0.5)
    assert len(abs_mag) > 40
    assert np.median(abs_mag) == pytest.approx(-19.3, abs=0.3)


def test_flare_contrast_is_large_in_u_g_and_small_in_i_z_y():
    """Seen in all six bands at one instant, a ~10 kK flare on a ~3 kK star brightens u, g far more than i, z, y."""
    rng = np.random.default_rng(2)
    n = 200
    flares = draw_flares(rng, np.full(n, 61000.0), LSST)
    bands = np.array([BAND_CODE[f"lsst-{b}"] for b in "ugrizy"], dtype=np.int8)
    visit_mjd = np.full((n, len(bands)), 61000.0)  # the caught flare is placed on this visit
    cadence = Cadence(visit_mjd, np.tile(bands, (n, 1)), np.full(visit_mjd.shape, 24.0),
                      np.ones(visit_mjd.shape, bool), visit_mjd[:, 0] - 1.0, visit_mjd[:, 0] + 1.0)
    flux_njy, _ = flares.difference_flux_njy(rng, cadence)
    contrast = flux_njy / flares.template_flux_njy[:, bands]
    assert np.all(contrast >= 0)
    u, g, r, i, z, y = contrast.T
    seen = g > 0
    assert seen.mean() > 0.9
    assert np.all(u[seen] > 10 * i[seen]) and np.all(g[seen] > 3 * i[seen]) and np.all(i[seen] > y[seen])


def test_flares_are_fast_and_seen_in_few_visits(lsst):
    detections = np.add.reduceat(lsst.is_detection.astype(int), lsst.offsets[:-1])
    flare = lsst.class_id == CLASS_IDS["M-dwarf flare"]
    assert np.median(detections[flare]) <= 2
    assert np.median(detections[lsst.class_id == CLASS_IDS["RR Lyrae"]]) > 10


def test_noise_is_f5_over_5_at_the_limit_with_a_floor():
    flux5_njy = mag_to_njy(24.0)
    assert noise_sigma_njy(0.0, flux5_njy) == pytest.approx(flux5_njy / 5)
    assert noise_sigma_njy(flux5_njy, flux5_njy) == pytest.approx(flux5_njy / 5, rel=0.02)
    bright_njy = mag_to_njy(14.0)
    assert noise_sigma_njy(bright_njy, flux5_njy) / bright_njy > 0.005 * np.log(10) / 2.5


def test_lsst_cadence_pairs_and_seasons():
    rng = np.random.default_rng(0)
    ra_deg, _ = sample_sky(rng, 200, LSST)
    start = np.full(200, 61000.0)
    cadence = draw_cadence(rng, LSST, ra_deg, start, start + 730.0)
    mjd, band = cadence.mjd_tai[0][cadence.valid[0]], cadence.band[0][cadence.valid[0]]
    same_night = np.diff(np.floor(mjd)) == 0
    gap_min = np.diff(mjd)[same_night] * 1440.0
    assert same_night.any() and np.all((gap_min >= 15) & (gap_min <= 45))
    assert np.all(band[1:][same_night] != band[:-1][same_night])
    nights = np.unique(np.floor(mjd))
    gaps = np.diff(nights)
    assert 2.5 < np.median(gaps[gaps < 30]) < 5  # every ~3-4 nights in season
    assert gaps.max() > 100  # the field sets for a few months
    visits_per_year = cadence.valid.sum(axis=1) / 2.0
    assert 100 < np.median(visits_per_year) < 250

"""models.encode: the one path from photometry to tensors."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.bands import BAND_CODE, BAND_WAVELENGTH_NM
from models.encode import ENCODING_VERSION, FEATURE_NAMES, N_FEATURES, Batch, encode
from models.lightcurve import LightCurve

MJD0 = 60512.123456789  # a 2024 MJD: float32 could not hold its sub-day part


def make_curve(n, rng, t_span_days=50.0, p_detection=0.5):
    t = MJD0 + np.sort(rng.uniform(0.0, t_span_days, n))
    return LightCurve.from_arrays(
        np.arange(n) + 1000, t, rng.integers(0, 9, n), rng.normal(0.0, 1000.0, n),
        rng.uniform(50.0, 200.0, n), rng.random(n) < p_detection)


def reference_window(curve, max_visits):
    """Per-curve restatement of the documented event window: indices of the kept points."""
    idx, det = np.arange(len(curve)), curve.is_detection
    if len(curve) <= max_visits:
        return idx
    dets = idx[det]
    if dets.size == 0:
        return idx[-max_visits:]
    if dets.size >= max_visits:
        if max_visits == 1:
            return dets[-1:]
        return dets[np.rint(np.arange(max_visits) * ((dets.size - 1) / (max_visits - 1))).astype(int)]
    others = idx[~det]
    gap = np.array([np.abs(curve.mjd_tai[dets] - curve.mjd_tai[i]).min() for i in others])
    nearest = others[np.argsort(gap, kind="stable")[:max_visits - dets.size]]
    return np.sort(np.concatenate([dets, nearest]))


def reference_encode(curve, max_visits):
    """Per-curve, loop-based restatement of the documented encoding, to check the vectorised one."""
    idx = reference_window(curve, max_visits)
    mjd, det = curve.mjd_tai[idx], curve.is_detection[idx]
    t_ref = mjd[det][0] if det.any() else mjd[0]
    scale = float(np.median(curve.flux_err_njy[idx].astype(np.float64)))
    rows = []
    for i in idx:
        rows.append([np.arcsinh(curve.flux_njy[i] / scale), np.arcsinh(curve.flux_err_njy[i] / scale),
                     float(curve.is_detection[i]), (BAND_WAVELENGTH_NM[curve.band[i]] - 650.0) / 300.0,
                     np.log10(scale) - 3.0])
    return np.array(rows, dtype=np.float32), (mjd - t_ref).astype(np.float32)


def test_shapes_dtypes_and_left_aligned_mask():
    rng = np.random.default_rng(0)
    curves = [make_curve(n, rng) for n in (3, 1, 10)]
    b = encode(curves, max_visits=8)
    assert isinstance(b, Batch) and len(b) == 3
    assert b.features.shape == (3, 8, N_FEATURES) and b.features.dtype == torch.float32
    assert b.dt_days.shape == (3, 8) and b.dt_days.dtype == torch.float32
    assert b.mask.shape == (3, 8) and b.mask.dtype == torch.bool
    assert b.n_visits.tolist() == [3, 1, 8]
    for i, n in enumerate([3, 1, 8]):
        assert b.mask[i, :n].all() and not b.mask[i, n:].any()
        assert (b.features[i, n:] == 0).all() and (b.dt_days[i, n:] == 0).all()
    assert len(FEATURE_NAMES) == N_FEATURES and isinstance(ENCODING_VERSION, str)
    assert encode(curves[:2], max_visits=8).mask.shape == (2, 3)  # padded to the longest window only


def test_many_detections_are_spaced_evenly_first_and_last_kept():
    n, L = 21, 5
    flux = np.arange(n, dtype=np.float32) * 100.0
    lc = LightCurve.from_arrays(np.arange(n), MJD0 + np.arange(n) * 1.0, np.full(n, 2), flux,
                                np.full(n, 100.0), np.ones(n, bool))
    b = encode([lc], max_visits=L)
    np.testing.assert_allclose(b.features[0, :, 0].numpy(), np.arcsinh(flux[::5] / 100.0), rtol=1e-6)
    assert b.dt_days[0].tolist() == [0.0, 5.0, 10.0, 15.0, 20.0]  # from the first detection in the window


def test_window_keeps_an_old_event_and_its_nearest_baseline():
    """A year of forced photometry after a 4-detection event: the event stays in a 10-point window."""
    n, L = 120, 10
    t = MJD0 + np.arange(n) * 3.0
    det = np.zeros(n, bool)
    det[30:34] = True
    flux = np.where(det, 5000.0, 0.0)
    lc = LightCurve.from_arrays(np.arange(n), t, np.full(n, 2), flux, np.full(n, 100.0), det)
    b = encode([lc], max_visits=L)
    assert b.features[0, :, 2].sum() == 4  # every detection
    assert b.dt_days[0].tolist() == [-9.0, -6.0, -3.0, 0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0]
    no_det = LightCurve.from_arrays(np.arange(n), t, np.full(n, 2), flux, np.full(n, 100.0), np.zeros(n, bool))
    assert encode([no_det], max_visits=L).dt_days[0].tolist() == [3.0 * k for k in range(L)]  # most recent points


def test_time_relative_to_first_detection_with_sub_day_resolution():
    ten_min = 10.0 / 1440.0
    mjd = MJD0 + np.array([-3.0, 0.0, ten_min, 2.0])
    det = np.array([False, True, True, False])
    lc = LightCurve.from_arrays(np.arange(4), mjd, np.full(4, 1), np.full(4, 300.0), np.full(4, 50.0), det)
    dt = encode([lc], max_visits=4).dt_days[0].double().numpy()
    np.testing.assert_allclose(dt, [-3.0, 0.0, ten_min, 2.0], atol=1e-6)  # 1e-6 d = 0.09 s

    no_det = LightCurve.from_arrays(np.arange(4), mjd, np.full(4, 1), np.full(4, 3.0), np.full(4, 50.0),
                                    np.zeros(4, bool))
    assert encode([no_det], max_visits=4).dt_days[0, 0] == 0.0  # falls back to the first point


def test_flux_scaling_is_relative_and_keeps_log_scale():
    rng = np.random.default_rng(1)
    lc = make_curve(12, rng)
    brighter = LightCurve(lc.source_id, lc.mjd_tai, lc.band, lc.flux_njy * 8, lc.flux_err_njy * 8, lc.is_detection)
    a, b = encode([lc, brighter], max_visits=16).features
    scale = FEATURE_NAMES.index("scale")
    np.testing.assert_allclose(a[:, :scale], b[:, :scale], atol=1e-5)
    np.testing.assert_allclose(b[:12, scale] - a[:12, scale], np.log10(8.0), atol=1e-5)
    np.testing.assert_allclose(a[0, scale], np.log10(np.median(lc.flux_err_njy.astype(np.float64))) - 3.0, atol=1e-6)


def test_band_enters_as_wavelength_so_surveys_share_it():
    def one(band):
        return LightCurve.from_arrays([1], [MJD0], [BAND_CODE[band]], [500.0], [100.0], [True])
    f = encode([one("lsst-r"), one("ztf-r"), one("lsst-u")], max_visits=1).features[:, 0]
    wl = FEATURE_NAMES.index("wl")
    assert abs(f[0, wl] - f[1, wl]) < 0.05 < abs(f[0, wl] - f[2, wl])
    assert torch.equal(f[0, :wl], f[1, :wl])


def test_identical_photometry_gives_identical_tensors():
    rng = np.random.default_rng(2)
    lc = make_curve(30, rng)
    perm = rng.permutation(30)
    shuffled = LightCurve.from_arrays(*(getattr(lc, f)[perm] for f in LightCurve.FIELDS))
    others = [make_curve(n, rng) for n in (5, 70)]
    alone = encode([lc])
    in_batch = encode([others[0], shuffled, others[1]])
    other = in_batch  # wider (a batch mate has 64 points), identical up to padding
    assert torch.equal(alone.features[0], other.features[1, :30]) and (other.features[1, 30:] == 0).all()
    assert torch.equal(alone.dt_days[0], other.dt_days[1, :30])
    assert alone.mask[0].all() and other.mask[1].sum() == 30


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=6), max_visits=st.integers(1, 24),
       seed=st.integers(0, 2**32 - 1))
def test_matches_loop_reference(lengths, max_visits, seed):
    rng = np.random.default_rng(seed)
    curves = [make_curve(n, rng, p_detection=0.3) for n in lengths]
    b = encode(curves, max_visits=max_visits)
    for i, lc in enumerate(curves):
        feats, dt = reference_encode(lc, max_visits)
        n = len(dt)
        assert b.mask[i].sum() == n
        np.testing.assert_allclose(b.features[i, :n].numpy(), feats, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(b.dt_days[i, :n].numpy(), dt)


def test_now_cuts_later_points():
    rng = np.random.default_rng(3)
    lc = make_curve(25, rng)
    now = lc.mjd_tai[9]
    prefix = LightCurve(*(getattr(lc, f)[:10] for f in LightCurve.FIELDS))
    cut = encode([lc, lc], max_visits=8, now_mjd_tai=[now, lc.mjd_tai[-1]])
    ref = encode([prefix, lc], max_visits=8)
    for name in ("features", "dt_days", "mask"):
        assert torch.equal(getattr(cut, name), getattr(ref, name))


def test_rejects_empty_input():
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="light curve 1 of the batch is empty"):
        encode([make_curve(3, rng), LightCurve.empty()])
    with pytest.raises(ValueError, match="no light curves"):
        encode([])
    lc = make_curve(3, rng)
    with pytest.raises(ValueError, match="light curve 0 .* no point"):
        encode([lc], now_mjd_tai=lc.mjd_tai[0] - 1.0)
    with pytest.raises(ValueError, match="max_visits"):
        encode([lc], max_visits=0)


def test_context_features_mask_missing_and_absurd_values_and_are_never_nan():
    from models.context import CONTEXT_FIELDS, context_vector
    from models.encode import CONTEXT_FEATURES

    lc = LightCurve.from_arrays([1, 2], [60000.0, 60001.0], [2, 2], [500.0, 900.0], [100.0, 100.0], [True, True])
    contexts = np.stack([
        np.full(len(CONTEXT_FIELDS), np.nan),  # a packet that says nothing
        context_vector(real_bogus=7.0, star_score=-1.0, star_distance_arcsec=-3.0, ss_distance_arcsec=np.nan,
                       first_detection_mjd_tai=1e300, ref_mag_ab=np.inf),  # absurd everywhere
        context_vector(real_bogus=0.9, star_distance_arcsec=np.inf, first_detection_mjd_tai=59990.0),
    ])
    batch = encode([lc] * 3, contexts=contexts)
    assert torch.isfinite(batch.context).all()
    assert not batch.context_mask[:2].any()
    known = dict(zip([name for name, _ in CONTEXT_FEATURES], batch.context_mask[2].tolist()))
    assert known == {"real_bogus": True, "star_score": False, "star_distance": True, "prior_history": True,
                     "ss_distance": False, "gaia_distance": False, "ref_distance": False, "ref_mag": False}
    values = dict(zip([name for name, _ in CONTEXT_FEATURES], batch.context[2].tolist()))
    assert values["real_bogus"] == pytest.approx(0.8) and values["star_distance"] == pytest.approx(np.log10(101) / 2)
    assert values["prior_history"] == pytest.approx(np.log10(11.0) / 3)  # detected 10 days before the window

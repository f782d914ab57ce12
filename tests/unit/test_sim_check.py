"""The simulated ZTF supernovae against the real BTS: the statistics, and the calibration they hold."""
import numpy as np
import pytest

from models.bands import BAND_NAMES
from models.lightcurve import LightCurve
from training.sim_check import class_statistics, curve_statistics, format_comparison, simulated_vs_bts

G, R = BAND_NAMES.index("ztf-g"), BAND_NAMES.index("ztf-r")


def _curve(points):
    """points: (mjd, band, AB mag) detections."""
    mjd, band, mag = map(np.array, zip(*points))
    flux = 10 ** ((31.4 - mag) / 2.5)
    n = len(mjd)
    return LightCurve(np.arange(n, dtype=np.int64), mjd.astype(np.float64), band.astype(np.int8),
                      flux.astype(np.float32), (flux / 10).astype(np.float32), np.ones(n, bool))


def test_curve_statistics_reads_peak_colour_and_decline():
    curve = _curve([(100, R, 19.0), (101, G, 18.9), (110, R, 18.0), (111, G, 18.1),
                    (125, R, 18.6), (124, G, 19.5), (140, R, 19.2)])
    stats = curve_statistics(curve)
    assert stats["peak_mag"] == pytest.approx(18.0, abs=1e-4)
    assert stats["rise_days"] == pytest.approx(10.0)
    assert stats["gr_peak_mag"] == pytest.approx(0.1, abs=1e-4)
    assert stats["gr_15d_mag"] == pytest.approx(0.9, abs=1e-4)
    assert stats["decline_15d_mag_per_day"] == pytest.approx(0.6 / 15, abs=1e-5)
    assert stats["decline_30d_mag_per_day"] == pytest.approx(1.2 / 30, abs=1e-5)
    assert stats["duration_days"] == pytest.approx(40.0)


def test_too_few_points_and_other_classes_are_left_out():
    short = _curve([(100, R, 19.0), (101, G, 18.9), (110, R, 18.0)])
    assert curve_statistics(short) is None
    report = class_statistics([short, short], [2222, 2332])
    assert report["SN Ia"]["n"] == 0 and report["SN Ia"]["rise_days"] is None
    assert "AGN" not in report


def test_simulated_supernovae_match_the_bts_train_split():
    """The calibration of `training.sim_transients` (the values it was set by; each failed before)."""
    report = simulated_vs_bts(n_per_class=1000, seed=3)
    text = format_comparison(report)
    sim, bts = report["simulated"], report["bts_train"]
    for name in ("SN Ia", "SN Ib/c", "SN II"):
        assert sim[name]["n"] >= 30, text
        assert abs(sim[name]["gr_peak_mag"][1] - bts[name]["gr_peak_mag"][1]) < 0.15, text
        assert abs(sim[name]["decline_15d_mag_per_day"][1] - bts[name]["decline_15d_mag_per_day"][1]) < 0.012, text
        assert abs(sim[name]["rise_days"][1] - bts[name]["rise_days"][1]) < 6.0, text
    assert abs(sim["SN Ia"]["gr_15d_mag"][1] - bts["SN Ia"]["gr_15d_mag"][1]) < 0.25, text

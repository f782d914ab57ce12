"""training.evaluation.peers: the feature baseline learns, its features are sane; SuperNNova's export and (slow) run."""
import csv

import numpy as np
import pytest

from models.lightcurve import LightCurve
from models.taxonomy import CLASS_IDS, FLARE_ID, N_CLASSES
from training.evaluation.peers import features, snana, supernnova, supernnova_env
from training.metrics import macro_f1


def _curve(mjd, flux, det, band=2, err=100.0):
    n = len(mjd)
    return LightCurve.from_arrays(np.arange(n), mjd, np.full(n, band), flux, np.full(n, err), det)


def test_global_features_by_hand():
    # Forced photometry at -1 d (SNR 1), detections at 0, 0.02 and 2 d; peak 2000 nJy at 0.02 d.
    lc = _curve([59999.0, 60000.0, 60000.02, 60002.0], [100.0, 1000.0, 2000.0, 500.0], [False, True, True, True])
    no_det = _curve([60000.0], [10.0], [False])
    f = dict(zip(features.GLOBAL_FEATURE_NAMES, features.global_features([lc, no_det]).T))
    assert f["log_n_detections"][0] == pytest.approx(np.log10(3))
    assert f["age_days"][0] == pytest.approx(2.0)
    assert f["min_detection_gap_days"][0] == pytest.approx(0.02, abs=1e-6)
    assert f["log_peak_flux_njy"][0] == pytest.approx(np.log10(2000.0))
    assert f["last_over_peak_flux"][0] == pytest.approx(0.25)
    assert f["peak_time_days"][0] == pytest.approx(0.02, abs=1e-6)
    assert f["pre_detection_max_snr"][0] == pytest.approx(1.0)
    assert np.isnan(features.global_features([lc, no_det])[1]).all()


def test_repeated_times_are_separated_per_band():
    t, band = features._separate_repeated_times(np.array([0.0, 0.0, 0.0, 0.5]), np.array([6, 6, 7, 6]))
    assert t.tolist() == pytest.approx([0.0, 1e-4, 0.0, 0.5])
    assert band.tolist() == [6, 6, 7, 6]


@pytest.fixture(scope="module")
def small_sets():
    from training.datasets import simulated

    return simulated("train", 330, survey="lsst"), simulated("test", 220, survey="lsst")


def test_feature_baseline_beats_chance(small_sets):
    pytest.importorskip("light_curve")
    pytest.importorskip("sklearn")
    train, test = small_sets
    model = features.FeatureBaseline(fit_algorithm="lmsder", max_iter=60, n_prefixes=1).fit(train.curves, train.class_ids)
    probs = model.predict_proba(test.curves)
    assert probs.shape == (len(test), N_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    f1 = macro_f1(test.targets, probs.argmax(axis=1))
    assert f1 > 3 / N_CLASSES, f"macro-F1 {f1:.3f} is not clearly above chance ({1 / N_CLASSES:.3f})"
    timed = model.predict_sets({"a": test.curves[:10], "empty": []})
    assert timed["a"][0].shape == (10, N_CLASSES) and timed["a"][1] > 0
    assert timed["empty"][0].shape == (0, N_CLASSES)


def test_feature_baseline_zeroes_classes_absent_from_training(small_sets):
    pytest.importorskip("light_curve")
    pytest.importorskip("sklearn")
    train, test = small_sets
    keep = train.class_ids != FLARE_ID
    model = features.FeatureBaseline(fit_algorithm="lmsder", max_iter=10, n_prefixes=0).fit(
        [c for c, k in zip(train.curves, keep) if k], train.class_ids[keep])
    probs = model.predict_proba(test.curves[:20])
    assert (probs[:, CLASS_IDS.index(FLARE_ID)] == 0).all()


def test_ztf_curves_with_equal_times_do_not_crash_the_features():
    pytest.importorskip("light_curve")
    # BTS-like: times rounded to 0.1 d, two points of one band at one time; one band with a single time.
    lc = LightCurve.from_arrays(np.arange(4), [60000.1, 60000.1, 60000.1, 60003.2], [6, 6, 7, 6],
                                [500.0, 520.0, 400.0, 900.0], [50.0] * 4, [True] * 4)
    model = features.FeatureBaseline(fit_algorithm="lmsder")
    model.bands = [6, 7, 8]
    x = model.features([lc])
    assert x.shape == (1, len(model.feature_names))


def test_snana_csv_export(tmp_path):
    lc = _curve([60000.0, 60000.5], [3631.0, -36.31], [True, False], band=1, err=36.31)
    snana.write_snana_csv(tmp_path / "x_PHOT.csv", [lc], ["obj1"], head_path=tmp_path / "x_HEAD.csv",
                          class_ids=[2222])
    rows = list(csv.DictReader(open(tmp_path / "x_PHOT.csv")))
    assert [r["FLT"] for r in rows] == ["g", "g"]
    assert float(rows[0]["FLUXCAL"]) == pytest.approx(3631.0 * snana.NJY_TO_FLUXCAL, rel=1e-4)
    assert float(rows[0]["FLUXCAL"]) == pytest.approx(100.0, rel=1e-3)  # 3631 nJy = 22.5 mag = FLUXCAL 100
    head = list(csv.DictReader(open(tmp_path / "x_HEAD.csv")))
    assert head == [{"SNID": "obj1", "SNTYPE": "2222", "PEAKMJD": "60000.0"}]


@pytest.mark.slow
def test_supernnova_trains_and_predicts(tmp_path):
    """Runs where SuperNNova's environment exists (``alertformer evaluate --peers supernnova`` makes it);
    a test never installs it (minutes, ~60 packages)."""
    from training.datasets import simulated

    if not (supernnova_env.DEFAULT_SUPERNNOVA_VENV / supernnova_env.READY_MARKER).is_file():
        pytest.skip(f"no SuperNNova environment at {supernnova_env.DEFAULT_SUPERNNOVA_VENV}")

    train, test = simulated("train", 220, survey="ztf"), simulated("test", 44, survey="ztf")
    model = supernnova.SuperNNovaPeer(work_dir=tmp_path, nb_epoch=2).fit(train.curves, train.class_ids)
    out = model.predict_sets({"all": test.curves, "two": test.curves[:2]})
    assert out["all"][0].shape == (len(test), N_CLASSES) and out["all"][1] > 0
    np.testing.assert_allclose(out["all"][0].sum(axis=1), 1.0, rtol=1e-4)
    np.testing.assert_allclose(out["two"][0], out["all"][0][:2], rtol=1e-4, atol=1e-6)

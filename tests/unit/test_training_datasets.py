"""Tests of training.datasets (simulated and ZTF BTS sets, splits) and training.prefixes."""
import numpy as np
import pytest
import torch

from models.bands import BAND_CODE
from models.context import CONTEXT_INDEX
from models.lightcurve import LightCurve
from models.model import AlertTransformer, ModelConfig
from models.taxonomy import CLASS_IDS, ID_TO_INDEX
from training.datasets import (
    BTS_LABELS, LabeledSet, class_balance_weights, sim_first_object_id, simulated, ztf_bts,
)
from training.prefixes import (
    days_after_first_detection, detections_only, draw_cut_detections, first_n_detections, prefix_batch,
    prefix_batches, random_prefixes,
)
from training.simulate import POINT_ID_STRIDE

N_SIM = 44  # 4 per class


# --- simulated sets -------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_splits() -> dict:
    return {split: simulated(split, N_SIM, seed=0, survey="lsst") for split in ("train", "val", "test")}


def _same(a: LabeledSet, b: LabeledSet) -> bool:
    return (a.object_ids == b.object_ids and np.array_equal(a.class_ids, b.class_ids)
            and all(np.array_equal(getattr(x, f), getattr(y, f))
                    for x, y in zip(a.curves, b.curves) for f in LightCurve.FIELDS))


def test_simulated_is_deterministic(sim_splits):
    assert _same(sim_splits["val"], simulated("val", N_SIM, seed=0, survey="lsst"))


def test_simulated_splits_are_disjoint_and_differ(sim_splits):
    ids = [set(s.object_ids) for s in sim_splits.values()]
    assert all(len(i) == N_SIM for i in ids)
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    sources = [set(np.concatenate([c.source_id for c in s.curves]).tolist()) for s in sim_splits.values()]
    assert not (sources[0] & sources[1]) and not (sources[1] & sources[2])
    fluxes = [s.curves[0].flux_njy for s in sim_splits.values()]
    assert not np.array_equal(fluxes[0], fluxes[1])


def test_simulated_surveys_mixes_and_seeds():
    ztf = simulated("train", 24, seed=0, survey="ztf")
    assert ztf.source == "sim-ztf-balanced-train-seed0"
    assert {int(b) for c in ztf.curves for b in np.unique(c.band)} <= {BAND_CODE["ztf-g"], BAND_CODE["ztf-r"],
                                                                       BAND_CODE["ztf-i"]}
    assert sorted(ztf.class_counts().values()) == [2] * 12  # balanced over the 12 classes
    blocks = {sim_first_object_id(sp, sv, mx) for sp in ("train", "val", "test") for sv in ("lsst", "ztf")
              for mx in ("balanced", "realistic")}
    assert len(blocks) == 12
    realistic = simulated("test", 200, seed=0, survey="lsst", mix="realistic")
    assert realistic.class_counts()[2222] > 50  # SN Ia is ~47 % of the realistic mix
    assert not _same(simulated("val", 22, seed=1, survey="ztf"), simulated("val", 22, seed=2, survey="ztf"))


def test_labeled_set_subset_and_concatenate(sim_splits):
    train = sim_splits["train"]
    sub = train.subset([3, 1])
    assert sub.object_ids == [train.object_ids[3], train.object_ids[1]]
    assert sub.curves[0] is train.curves[3] and sub.class_ids.tolist() == train.class_ids[[3, 1]].tolist()
    both = LabeledSet.concatenate([sub, train.subset(np.arange(len(train)) < 2)])
    assert len(both) == 4 and both.source == f"{train.source}+{train.source}"
    assert both.targets.tolist() == [ID_TO_INDEX[c] for c in both.class_ids.tolist()]


def test_class_balance_weights():
    w = class_balance_weights(np.array([2222] * 6 + [2224] * 2))
    assert w[ID_TO_INDEX[2222]] == pytest.approx(8 / (2 * 6)) and w[ID_TO_INDEX[2224]] == pytest.approx(8 / (2 * 2))
    assert w[ID_TO_INDEX[2233]] == 0
    clipped = class_balance_weights(np.array([2222] * 100 + [2224]), max_ratio=10)
    assert clipped[ID_TO_INDEX[2224]] == pytest.approx(10 * clipped[ID_TO_INDEX[2222]], rel=1e-5)


# --- ZTF BTS ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bts(shared_data) -> dict:
    """The BTS as published (detections only, no context): what the file holds."""
    return {split: ztf_bts(split, seed=0, data_dir=shared_data, service_form=False)
            for split in ("all", "train", "val", "test")}


def test_bts_units_bands_and_labels(bts):
    full = bts["all"]
    assert len(full) == 1346  # 1,359 objects less 9 Nova and 4 "other"
    assert full.class_counts() == {2222: 1009, 2223: 73, 2224: 241, 2242: 19, 2243: 4}
    lc = full.curves[full.object_ids.index("ZTF18aaaibml")]  # first rows of ztf_bts_lightcurves.csv
    assert full.class_ids[full.object_ids.index("ZTF18aaaibml")] == BTS_LABELS["SNII"] == 2224
    assert lc.mjd_tai[:2].tolist() == [58883.3, 58883.4]
    assert lc.band[:2].tolist() == [BAND_CODE["ztf-r"], BAND_CODE["ztf-g"]]
    np.testing.assert_allclose(lc.flux_njy[:2], [116455.0, 157631.0], rtol=1e-6)  # 116.455 uJy
    np.testing.assert_allclose(lc.flux_err_njy[:2], [13879.5, 18224.1], rtol=1e-6)
    assert all(c.is_detection.all() for c in full.curves)
    sources = np.concatenate([c.source_id for c in full.curves])
    assert len(np.unique(sources)) == len(sources)


def test_bts_split_is_stratified_disjoint_and_the_test_holdout_is_fixed(bts, shared_data):
    parts = {s: set(bts[s].object_ids) for s in ("train", "val", "test")}
    assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"]) \
        and not (parts["val"] & parts["test"])
    assert parts["train"] | parts["val"] | parts["test"] == set(bts["all"].object_ids)
    for cid, n in bts["all"].class_counts().items():
        assert bts["test"].class_counts()[cid] == round(0.2 * n)
        assert bts["val"].class_counts()[cid] == round(0.2 * n)
    other_seed = {s: set(ztf_bts(s, seed=1, data_dir=shared_data).object_ids) for s in ("val", "test")}
    assert other_seed["test"] == parts["test"]  # the holdout does not move with the seed
    assert other_seed["val"] != parts["val"]
    assert set(ztf_bts("val", seed=0, data_dir=shared_data).object_ids) == parts["val"]  # deterministic


def test_bts_data_dir_from_environment(tmp_path, monkeypatch):
    (tmp_path / "labeled").mkdir()
    (tmp_path / "labeled" / "ztf_bts_lightcurves.csv").write_text(
        "object_id,mjd,band,flux,flux_err,mag,mag_err,label\n"
        "ZTFa,60000.1,ztfg,2.0,0.5,23,0.2,SNIa\nZTFa,60001.2,ztfr,3.0,0.5,22,0.2,SNIa\n"
        "ZTFb,60000.0,ztfr,4.0,1.0,22,0.2,Nova\n")
    monkeypatch.setenv("ALERTFORMER_DATA", str(tmp_path))
    full = ztf_bts("all", service_form=False)
    assert full.object_ids == ["ZTFa"] and full.class_ids.tolist() == [2222]
    np.testing.assert_allclose(full.curves[0].flux_njy, [2000.0, 3000.0])


def test_bts_service_form_adds_prediscovery_limits_and_a_context(bts, shared_data):
    served = ztf_bts("all", seed=0, data_dir=shared_data, service_form=True)
    assert served.object_ids == bts["all"].object_ids
    for plain, lc, context in zip(bts["all"].curves[:50], served.curves[:50], served.contexts[:50]):
        first = plain.mjd_tai[0]
        limits = ~lc.is_detection
        np.testing.assert_array_equal(lc.flux_njy[lc.is_detection], plain.flux_njy)  # the detections unchanged
        assert limits.any() and np.all(lc.mjd_tai[limits] < first) and np.all(lc.mjd_tai[limits] >= first - 30.0)
        assert np.all(lc.flux_njy[limits] == 0.0) and np.all(lc.flux_err_njy[limits] > 0)
        assert not np.isnan(context[CONTEXT_INDEX["real_bogus"]])
        assert context[CONTEXT_INDEX["first_detection_mjd_tai"]] == first  # a young transient's history


# --- prefixes ---------------------------------------------------------------------------
def _curve(det, mjd=None) -> LightCurve:
    n = len(det)
    mjd = np.arange(n, dtype=np.float64) + 60000.0 if mjd is None else np.asarray(mjd, dtype=np.float64)
    return LightCurve.from_arrays(np.arange(n), mjd, np.full(n, 2), np.where(det, 900.0, 10.0),
                                  np.full(n, 100.0), det)


def test_first_n_detections_keeps_earlier_non_detections():
    lc = _curve([False, False, True, False, True, True, False])
    assert first_n_detections(lc, 1).source_id.tolist() == [0, 1, 2]
    assert first_n_detections(lc, 2).source_id.tolist() == [0, 1, 2, 3, 4]
    assert first_n_detections(lc, 3).source_id.tolist() == [0, 1, 2, 3, 4, 5]
    assert first_n_detections(lc, 4) is None
    assert first_n_detections(_curve([False, False]), 1) is None
    with pytest.raises(ValueError):
        first_n_detections(lc, 0)


def test_days_after_first_detection_ends_at_the_last_alert():
    lc = _curve([False, True, False, True, False, True], mjd=[59990.0, 60000.0, 60000.5, 60002.0, 60003.0, 60010.0])
    assert days_after_first_detection(lc, 0.0).source_id.tolist() == [0, 1]
    assert days_after_first_detection(lc, 1.0).source_id.tolist() == [0, 1]
    assert days_after_first_detection(lc, 2.0).source_id.tolist() == [0, 1, 2, 3]
    assert days_after_first_detection(lc, 9.0).source_id.tolist() == [0, 1, 2, 3]
    assert days_after_first_detection(lc, 100.0).source_id.tolist() == [0, 1, 2, 3, 4, 5]
    assert days_after_first_detection(_curve([False]), 1.0) is None
    with pytest.raises(ValueError):
        days_after_first_detection(lc, -1.0)


def test_detections_only():
    assert detections_only(_curve([False, True, False, True])).source_id.tolist() == [1, 3]


@pytest.mark.parametrize("scheme", ["uniform", "log", "mixed"])
def test_draw_cut_detections_covers_the_range(scheme):
    rng = np.random.default_rng(0)
    k = draw_cut_detections(np.full(20000, 5), rng, scheme=scheme)
    assert set(np.unique(k).tolist()) == {1, 2, 3, 4, 5}
    counts = np.bincount(k, minlength=6)[1:] / len(k)
    log_p = np.log((np.arange(1, 6) + 1) / np.arange(1, 6)) / np.log(6)  # P(k) = log((k+1)/k) / log 6
    expected = {"uniform": np.full(5, 0.2), "log": log_p, "mixed": (0.2 + log_p) / 2}[scheme]
    np.testing.assert_allclose(counts, expected, atol=0.02)
    assert draw_cut_detections(np.array([0, 1, 3]), rng, min_detections=2, scheme=scheme).tolist()[:2] == [0, 1]


@pytest.mark.parametrize("scheme", ["uniform", "log"])
def test_the_recipes_schemes_draw_one_number_per_curve(scheme):
    """A seeded recipe's prefixes must not change when schemes are added: "uniform" and "log" take exactly one
    uniform number per curve from the generator, in the closed form they always had."""
    d = np.array([1, 4, 30, 100])
    k = draw_cut_detections(d, np.random.default_rng(3), scheme=scheme)
    reference = np.random.default_rng(3)
    u = reference.random(len(d))
    expected = 1 + np.floor(u * d) if scheme == "uniform" else np.floor(np.exp(u * np.log(d + 1.0)))
    np.testing.assert_array_equal(k, np.clip(expected.astype(np.int64), 1, d))


def test_random_prefixes_are_prefixes_ending_at_a_detection(sim_splits):
    curves = sim_splits["train"].curves
    rng = np.random.default_rng(1)
    for _ in range(3):
        for full, cut in zip(curves, random_prefixes(curves, rng, min_detections=1, scheme="log")):
            assert 1 <= len(cut) <= len(full)
            assert cut.is_detection[-1]
            np.testing.assert_array_equal(cut.source_id, full.source_id[:len(cut)])
    with pytest.raises(ValueError):
        random_prefixes(curves, rng, scheme="nope")


def test_prefix_batches_are_a_padding_free_regrouping(sim_splits):
    """Chunks of similar length give the same logits as one padded batch, in the permuted order."""
    curves = sim_splits["train"].curves
    model = AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1, dropout=0.0)).eval()
    one = prefix_batch(curves, np.random.default_rng(5), 64, scheme="log", drop_nondetections_prob=0.3)
    chunks, order = prefix_batches(curves, np.random.default_rng(5), 64, n_chunks=4, scheme="log",
                                   drop_nondetections_prob=0.3)
    assert sorted(order.tolist()) == list(range(len(curves)))
    assert sum(b.mask.sum() for b in chunks) == one.mask.sum()
    assert sum(b.mask.numel() for b in chunks) < one.mask.numel()
    with torch.no_grad():
        np.testing.assert_allclose(torch.cat([model(b)[0] for b in chunks]).numpy(), model(one)[0][order].numpy(),
                                   atol=1e-5)


def test_sim_point_ids_fit_the_stride(sim_splits):
    assert all(len(c) < POINT_ID_STRIDE for s in sim_splits.values() for c in s.curves)
    assert len(CLASS_IDS) == 12  # the simulator's classes: ELAsTiCC2's 11 and asteroids

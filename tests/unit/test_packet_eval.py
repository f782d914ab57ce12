"""The real-packet report's metrics on hand-made scores."""
import numpy as np
import pytest

from models.priors import ZTF_ALERTS_PRIOR
from models.taxonomy import CLASS_IDS, ID_TO_INDEX, N_CLASSES
from training.packet_eval import STREAM_SN_SHARE, PacketScores, packet_report, roc_auc_over_peer


def test_ece_under_the_stream_prior_publishes_under_it_and_reweights_to_its_sn_share():
    # 10 objects, one alert each at 5 detections: half SN Ia, half QSO; every alert says 50 % Ia, 50 % AGN.
    probs = np.zeros((10, N_CLASSES))
    probs[:, ID_TO_INDEX[2222]] = probs[:, ID_TO_INDEX[2332]] = 0.5
    labels = np.array(["SN Ia"] * 5 + ["QSO/AGN"] * 5, dtype=object)
    scores = PacketScores(np.array([f"o{i}" for i in range(10)], dtype=object), labels, np.full(10, 5),
                          probs[:, ID_TO_INDEX[2222]], probs, {})
    m = packet_report(scores)["sn_vs_non_sn"]["5-9"]
    assert m["ece"] == pytest.approx(0.0)  # 0.5 for a half-SN set: calibrated as trained
    ia, agn = ZTF_ALERTS_PRIOR[2222], ZTF_ALERTS_PRIOR[2332]
    published = ia / (ia + agn)  # P(Ia) under the prior
    assert STREAM_SN_SHARE == pytest.approx(sum(ZTF_ALERTS_PRIOR[c] for c in (2222, 2223, 2224, 2242))
                                            / sum(ZTF_ALERTS_PRIOR.values()))
    assert m["ece_stream_prior"] == pytest.approx(abs(published - STREAM_SN_SHARE))
    assert set(ZTF_ALERTS_PRIOR) == set(CLASS_IDS)


def _scores(labels, n_detections, sn, fired=None) -> PacketScores:
    n = len(labels)
    probs = np.zeros((n, N_CLASSES))
    probs[:, ID_TO_INDEX[2222]] = sn
    probs[:, ID_TO_INDEX[2332]] = 1 - np.asarray(sn)
    return PacketScores(np.array([f"o{i}" for i in range(n)], dtype=object), np.array(labels, dtype=object),
                        np.asarray(n_detections), np.asarray(sn, dtype=float), probs, fired or {})


def test_the_model_over_the_peer_is_paired_per_bin_and_its_interval_excludes_zero_only_for_a_real_gap():
    labels = ["SN Ia"] * 12 + ["QSO/AGN"] * 12
    ranked = np.r_[np.linspace(0.6, 0.9, 12), np.linspace(0.1, 0.4, 12)]  # every SN above every QSO
    reversed_ = 1 - ranked
    model, peer = _scores(labels, [5] * 24, ranked), _scores(labels, [5] * 24, reversed_)
    gap = roc_auc_over_peer(model, peer)
    assert gap["5-9"]["difference"] == pytest.approx(1.0) and gap["5-9"]["ci95"][0] > 0
    assert gap["1"] is None and gap["10+"] is None  # no alert in those bins
    same = roc_auc_over_peer(model, model)["all"]
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0]
    m = packet_report(model)["sn_vs_non_sn"]["5-9"]
    assert m["roc_auc"] == 1.0 and m["roc_auc_ci95"] == [1.0, 1.0]


def test_rule_rates_carry_wilson_intervals_of_the_objects_counted():
    # 7 SNe seen by their 5th detection, the rule fired for 5 of them; 20 QSOs, fired for none.
    labels = ["SN Ia"] * 7 + ["QSO/AGN"] * 20
    fired = np.array([True] * 5 + [False] * 22)
    rates = packet_report(_scores(labels, [3] * 27, [0.5] * 27, {"young_sn": fired}))["rules"]["young_sn"]
    assert rates["SN"]["fired_by_5"] == pytest.approx(5 / 7)
    low, high = rates["SN"]["fired_by_5_ci95"]
    assert low < 5 / 7 < high and high < 1 and low > 0.3
    assert rates["non-SN"]["fired_by_5"] == 0.0 and rates["non-SN"]["fired_by_5_ci95"][0] == 0.0
    assert 0.1 < rates["non-SN"]["fired_by_5_ci95"][1] < 0.2  # 0 of 20 does not prove a rate under 10 %

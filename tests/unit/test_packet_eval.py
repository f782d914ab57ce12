"""The real-packet report's metrics on hand-made scores."""
import numpy as np
import pytest

from models.priors import ZTF_ALERTS_PRIOR
from models.taxonomy import CLASS_IDS, ID_TO_INDEX, N_CLASSES
from training.packet_eval import STREAM_SN_SHARE, PacketScores, packet_report


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

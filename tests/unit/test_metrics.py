"""training.metrics against hand-computed tables, and against scikit-learn where it is installed."""
import numpy as np
import pytest

from models.taxonomy import CLASS_NAMES, FLARE_INDEX, N_CLASSES, SN_LIKE_INDICES
from training import metrics

# A 3-class table worked by hand:
#   true 0 0 0 1 1 2 2 2
#   pred 0 0 1 1 2 2 2 0
# cm = [[2,1,0],[0,1,1],[1,0,2]]
# precision = [2/3, 1/2, 2/3], recall = [2/3, 1/2, 2/3], F1 = same, macro = (2/3+1/2+2/3)/3 = 11/18
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 2, 2, 0])


def test_confusion_matrix_by_hand():
    assert metrics.confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]


def test_per_class_and_macro_f1_by_hand():
    s = metrics.per_class_scores(metrics.confusion_matrix(Y_TRUE, Y_PRED, 3))
    np.testing.assert_allclose(s["precision"], [2 / 3, 1 / 2, 2 / 3])
    np.testing.assert_allclose(s["recall"], [2 / 3, 1 / 2, 2 / 3])
    np.testing.assert_allclose(s["f1"], [2 / 3, 1 / 2, 2 / 3])
    assert s["support"].tolist() == [3, 2, 3]
    assert metrics.macro_f1(Y_TRUE, Y_PRED, 3) == pytest.approx(11 / 18)


def test_absent_class_is_undefined_not_zero():
    # Class 2 never true but predicted once: no recall, no F1, and it stays out of the macro mean.
    s = metrics.per_class_scores(metrics.confusion_matrix([0, 1, 1], [0, 1, 2], 3))
    assert np.isnan(s["recall"][2]) and np.isnan(s["f1"][2]) and s["precision"][2] == 0.0
    assert metrics.macro_f1([0, 1, 1], [0, 1, 2], 3) == pytest.approx((1 + 2 / 3) / 2)
    # Class 1 true but never predicted: no precision, F1 0 (it counts against the macro mean).
    s = metrics.per_class_scores(metrics.confusion_matrix([0, 1], [0, 0], 2))
    assert np.isnan(s["precision"][1]) and s["f1"][1] == 0.0


def test_roc_auc_by_hand_with_ties():
    # pos scores {0.8, 0.4}, neg {0.4, 0.1}: pairs (0.8>0.4, 0.8>0.1, 0.4=0.4 -> 1/2, 0.4>0.1) = 3.5/4
    assert metrics.roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    assert metrics.roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert np.isnan(metrics.roc_auc([1, 1], [0.1, 0.2]))


def test_average_precision_by_hand():
    # ranked: 0.9 pos (P=1, R=1/2), 0.7 neg, 0.5 pos (P=2/3, R=1): AP = 1/2 * 1 + 1/2 * 2/3
    assert metrics.average_precision([1, 0, 1], [0.9, 0.7, 0.5]) == pytest.approx(5 / 6)
    # A tie between a positive and a negative at the top: one threshold, P = 1/2.
    assert metrics.average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert np.isnan(metrics.average_precision([0, 0], [0.5, 0.2]))


def test_ece_by_hand():
    # Top probabilities 0.35 (class 1, truth 0: wrong), 0.9 (right), 0.7 (wrong). Bins of width 0.5:
    # bin 0 {0.35}: |0 - 0.35|; bin 1 {0.9, 0.7}: |0.5 - 0.8|.
    probs = np.array([[0.3, 0.35, 0.35], [0.9, 0.05, 0.05], [0.7, 0.3, 0.0]])
    ece = metrics.expected_calibration_error(probs, [0, 0, 1], n_bins=2)
    assert ece == pytest.approx((1 * abs(0 - 0.35) + 2 * abs(0.5 - 0.8)) / 3)
    rel = metrics.reliability(probs.max(axis=1), probs.argmax(axis=1) == np.array([0, 0, 1]), n_bins=2)
    assert rel["count"].tolist() == [1, 2]
    np.testing.assert_allclose(rel["accuracy"], [0.0, 0.5])
    # Perfectly calibrated binary score.
    assert metrics.binary_ece([1, 1, 1, 0], [0.75] * 4, n_bins=10) == pytest.approx(0.0)


def test_classification_report_keys_and_one_vs_rest():
    rng = np.random.default_rng(1)
    y = rng.integers(0, N_CLASSES, 300)
    probs = rng.dirichlet(np.ones(N_CLASSES), 300)
    probs[np.arange(300), y] += 1.0  # informative
    probs /= probs.sum(axis=1, keepdims=True)
    rep = metrics.classification_report(probs, y)
    assert set(rep) >= {"n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "sn_vs_rest",
                        "flare_vs_rest", "ece", "reliability"}
    assert list(rep["per_class"]) == list(CLASS_NAMES)
    assert np.array(rep["confusion_matrix"]).sum() == 300
    is_sn = np.isin(y, SN_LIKE_INDICES)
    assert rep["sn_vs_rest"]["n_positive"] == int(is_sn.sum())
    assert rep["sn_vs_rest"]["roc_auc"] == pytest.approx(
        metrics.roc_auc(is_sn, probs[:, list(SN_LIKE_INDICES)].sum(axis=1)))
    assert rep["flare_vs_rest"]["pr_auc"] == pytest.approx(
        metrics.average_precision(y == FLARE_INDEX, probs[:, FLARE_INDEX]))
    assert rep["macro_f1"] > 0.5


def test_typing_picks_among_the_classes_of_the_truth_only():
    """A set of SNe Ia and II (like real BTS): an absent class ranked first (here AGN) does not enter the typing
    answer, and Ia-vs-rest is scored on P(Ia) renormalised over Ia and II."""
    agn = CLASS_NAMES.index("AGN")
    ia, ii = CLASS_NAMES.index("Ia"), CLASS_NAMES.index("II")
    probs = np.zeros((4, N_CLASSES))
    probs[:, agn] = 0.7
    probs[:, ia] = [0.2, 0.05, 0.1, 0.02]
    probs[:, ii] = 0.3 - probs[:, ia]
    y = np.array([ia, ia, ii, ii])
    rep = metrics.classification_report(probs, y)
    assert rep["accuracy"] == 0.0  # every argmax is AGN
    typing = rep["typing"]
    assert typing["classes"] == ["Ia", "II"]
    assert typing["accuracy"] == pytest.approx(0.75)  # P(Ia | Ia or II) = 0.67, 0.17, 0.33, 0.07
    assert typing["ia_vs_rest"]["roc_auc"] == pytest.approx(metrics.roc_auc(y == ia, probs[:, ia] / 0.3))
    assert metrics.classification_report(probs[2:], y[2:])["typing"]["ia_vs_rest"] is None


def test_report_of_set_without_flares_writes_none():
    probs = np.full((4, N_CLASSES), 1 / N_CLASSES)
    rep = metrics.classification_report(probs, [0, 0, 2, 2])
    assert rep["flare_vs_rest"]["pr_auc"] is None and rep["flare_vs_rest"]["n_positive"] == 0
    assert rep["per_class"]["KN"]["recall"] is None


class TestAgainstSklearn:
    sk = pytest.importorskip("sklearn.metrics")

    @pytest.fixture
    def data(self):
        rng = np.random.default_rng(7)
        y = rng.integers(0, 5, 500)
        y[y == 4] = 3  # class 4 absent from the truth
        probs = rng.dirichlet(np.ones(5), 500)
        probs[np.arange(500), y] += rng.uniform(0, 1, 500)
        probs = np.round(probs / probs.sum(axis=1, keepdims=True), 2)  # rounding makes ties
        return y, probs

    def test_confusion_and_f1(self, data):
        y, probs = data
        pred = probs.argmax(axis=1)
        np.testing.assert_array_equal(metrics.confusion_matrix(y, pred, 5),
                                      self.sk.confusion_matrix(y, pred, labels=range(5)))
        present = np.unique(y)
        assert metrics.macro_f1(y, pred, 5) == pytest.approx(
            self.sk.f1_score(y, pred, labels=present, average="macro"))
        s = metrics.per_class_scores(metrics.confusion_matrix(y, pred, 5))
        np.testing.assert_allclose(s["recall"][present],
                                   self.sk.recall_score(y, pred, labels=present, average=None))

    @pytest.mark.parametrize("positive", [0, 3])
    def test_auc_and_ap(self, data, positive):
        y, probs = data
        truth, score = y == positive, probs[:, positive]
        assert metrics.roc_auc(truth, score) == pytest.approx(self.sk.roc_auc_score(truth, score))
        assert metrics.average_precision(truth, score) == pytest.approx(
            self.sk.average_precision_score(truth, score))

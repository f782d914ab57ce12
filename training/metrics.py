"""Classification metrics for the evaluation, in plain numpy.

Everything here takes class *indices* (0..C-1, the model's output order,
`models.taxonomy.CLASS_IDS`) and probabilities ``(N, C)`` whose rows sum to 1,
and returns plain numbers or arrays. No scikit-learn at import or at run time;
the unit tests cross-check against it where it is installed.

Conventions, stated once:

- **Macro-F1** averages the per-class F1 over the classes present in the truth
  (support > 0). A class that never occurs in a test set (e.g. flares in the
  ZTF Bright Transient Survey) has no recall to measure; predicting it still
  costs recall of the true classes. scikit-learn's ``f1_score(average="macro")``
  averages over the union of true and predicted labels instead; pass
  ``labels=`` present classes to it to get this number.
- Precision of a class never predicted, and recall of a class never true, are
  NaN (not 0): "undefined" stays distinguishable from "bad".
- **ROC-AUC** is the Mann-Whitney statistic (ties count one half);
  **PR-AUC** is average precision, ``sum_n (R_n - R_{n-1}) P_n`` over the
  distinct score thresholds (scikit-learn's ``average_precision_score``, no
  interpolation). Both are NaN when the positive or negative class is empty.
- **ECE** (expected calibration error) is the top-label version: bin the
  predicted class's probability into ``n_bins`` equal-width bins on [0, 1],
  ``ECE = sum_b (n_b / N) |accuracy_b - confidence_b|``. `binary_ece` does the
  same for one score (e.g. ``sn_likelihood``) against a 0/1 truth.
"""
import numpy as np

from models.taxonomy import CLASS_NAMES, FLARE_INDEX, IA_INDEX, N_CLASSES, SN_LIKE_INDICES

ECE_BINS = 15
BOOTSTRAP_RESAMPLES = 200


def confusion_matrix(y_true, y_pred, n_classes: int = N_CLASSES) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Parameters
    ----------
    y_true, y_pred : (N,) array-like of int
        Class indices in 0..n_classes-1.
    n_classes : int

    Returns
    -------
    (n_classes, n_classes) int64 ndarray
        ``cm[i, j]`` = objects of true class i predicted as j.

    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3).tolist()
    [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape}: need two (N,) arrays")
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_classes):
        raise ValueError(f"class index outside 0..{n_classes - 1}")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class from a confusion matrix.

    Parameters
    ----------
    cm : (C, C) array of int
        As returned by `confusion_matrix` (rows true, columns predicted).

    Returns
    -------
    dict of (C,) arrays
        ``precision``, ``recall``, ``f1`` (float64; NaN where undefined: a class
        never predicted has no precision, one never true no recall; F1 is NaN
        when either is, except that it is 0 when the class is true but never
        predicted correctly), ``support`` (int64, true count), ``predicted``
        (int64, predicted count).

    >>> s = per_class_scores(np.array([[2, 0], [1, 1]]))
    >>> s["precision"].round(3).tolist(), s["recall"].tolist(), s["f1"].round(3).tolist()
    ([0.667, 1.0], [1.0, 0.5], [0.8, 0.667])
    """
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)  # (C,)
    support = cm.sum(axis=1)  # (C,)
    predicted = cm.sum(axis=0)  # (C,)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        f1 = 2 * tp / (support + predicted)  # = 2PR/(P+R) where both exist
    # A present class never predicted has precision NaN but F1 = 0 (tp = 0): keep it 0.
    f1 = np.where(support > 0, f1, np.nan)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support, "predicted": predicted}


def macro_f1(y_true, y_pred, n_classes: int = N_CLASSES) -> float:
    """Mean F1 over the classes present in ``y_true`` (NaN for an empty set).

    >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1], 3), 4)
    0.7333
    """
    f1 = per_class_scores(confusion_matrix(y_true, y_pred, n_classes))["f1"]
    present = ~np.isnan(f1)
    return float(f1[present].mean()) if present.any() else float("nan")


def _binary_inputs(y_true, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"y_true {y.shape} and score {s.shape}: need two (N,) arrays")
    if not np.all(np.isfinite(s)):
        raise ValueError("score: non-finite value(s)")
    return y, s


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve of ``score`` for the positives ``y_true``.

    Computed as the Mann-Whitney U statistic with mid-ranks for ties, so a tie
    between a positive and a negative counts one half.

    Parameters
    ----------
    y_true : (N,) array-like of bool
        True for the positive class.
    score : (N,) array-like of float
        Higher means more likely positive.

    Returns
    -------
    float
        In [0, 1]; NaN if there are no positives or no negatives.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([0, 1], [0.5, 0.5])
    0.5
    """
    y, s = _binary_inputs(y_true, score)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # Mid-rank of each distinct value: ranks first..last (1-based) averaged.
    last = np.cumsum(counts)  # (U,)
    mid_rank = last - (counts - 1) / 2.0  # (U,)
    rank_sum_pos = mid_rank[inverse][y].sum()
    return float((rank_sum_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def precision_recall_curve(y_true, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at each distinct threshold, highest threshold first.

    Parameters
    ----------
    y_true : (N,) array-like of bool
    score : (N,) array-like of float

    Returns
    -------
    precision, recall, thresholds : (K,) float64 ndarrays
        Predicting positive for ``score >= thresholds[k]`` gives
        ``precision[k]`` and ``recall[k]`` (recall NaN without positives).

    >>> p, r, t = precision_recall_curve([1, 0, 1], [0.9, 0.5, 0.2])
    >>> p.round(3).tolist(), r.tolist(), t.tolist()
    ([1.0, 0.5, 0.667], [0.5, 0.5, 1.0], [0.9, 0.5, 0.2])
    """
    y, s = _binary_inputs(y_true, score)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # The last index of each run of equal scores: a threshold admits all of its ties.
    last_of_run = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])  # (K,)
    tp = np.cumsum(y_sorted)[last_of_run].astype(np.float64)  # (K,)
    n_above = last_of_run + 1.0  # (K,)
    n_pos = y.sum()
    recall = tp / n_pos if n_pos else np.full(tp.shape, np.nan)
    return tp / n_above, recall, s_sorted[last_of_run]


def average_precision(y_true, score) -> float:
    """PR-AUC as average precision: ``sum_k (R_k - R_{k-1}) P_k``, R_0 = 0.

    The same number as scikit-learn's ``average_precision_score`` (a step
    function, no interpolation). A random score gives about the prevalence.

    Parameters
    ----------
    y_true : (N,) array-like of bool
    score : (N,) array-like of float

    Returns
    -------
    float
        NaN if there are no positives or no negatives (then it says nothing).

    >>> round(average_precision([1, 0, 1], [0.9, 0.5, 0.2]), 4)
    0.8333
    """
    y, s = _binary_inputs(y_true, score)
    if y.all() or not y.any():
        return float("nan")
    precision, recall, _ = precision_recall_curve(y, s)
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def reliability(confidence, correct, n_bins: int = ECE_BINS, weight=None) -> dict[str, np.ndarray]:
    """Reliability-diagram data: per equal-width bin of ``confidence`` on [0, 1].

    Parameters
    ----------
    confidence : (N,) array-like of float in [0, 1]
        The predicted probability of the event (top-label: the predicted class's
        probability; binary: the score).
    correct : (N,) array-like of bool or float
        Whether the event happened (top-label: the prediction was right).
    n_bins : int
    weight : (N,) array-like of float, optional
        Sample weights (e.g. to reweight a test set to a stream's class mix); ``count``
        is then the weight per bin.

    Returns
    -------
    dict
        ``edges`` (n_bins + 1,), ``count`` (n_bins,) int64 (float with weights), ``confidence`` and
        ``accuracy`` (n_bins,) float64 means per bin (NaN for an empty bin).
        Bins are ``[e_k, e_{k+1})``, the last one closed.

    >>> r = reliability([0.1, 0.15, 0.9], [0, 1, 1], n_bins=2)
    >>> r["count"].tolist(), r["accuracy"].tolist()
    ([2, 1], [0.5, 1.0])
    """
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.shape != hit.shape or conf.ndim != 1:
        raise ValueError(f"confidence {conf.shape} and correct {hit.shape}: need two (N,) arrays")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_of = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)  # (N,) p = 1 goes to the last bin
    w = np.ones_like(conf) if weight is None else np.asarray(weight, dtype=np.float64)
    count = np.bincount(bin_of, minlength=n_bins) if weight is None else np.bincount(bin_of, w, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bin_of, weights=w * conf, minlength=n_bins) / count
        accuracy = np.bincount(bin_of, weights=w * hit, minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": accuracy}


def _ece_from_bins(bins: dict[str, np.ndarray]) -> float:
    n = bins["count"].sum()
    if n == 0:
        return float("nan")
    used = bins["count"] > 0
    gap = np.abs(bins["accuracy"][used] - bins["confidence"][used])
    return float(np.sum(bins["count"][used] / n * gap))


def expected_calibration_error(probs, y_true, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE of class probabilities.

    Parameters
    ----------
    probs : (N, C) array-like of float
        Rows sum to 1.
    y_true : (N,) array-like of int
        True class indices.
    n_bins : int

    Returns
    -------
    float
        In [0, 1]; NaN for an empty set.

    >>> round(expected_calibration_error([[0.8, 0.2], [0.6, 0.4]], [0, 1], n_bins=10), 6)
    0.4
    """
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    return _ece_from_bins(reliability(probs.max(axis=1), probs.argmax(axis=1) == y_true, n_bins))


def binary_ece(y_true, score, n_bins: int = ECE_BINS, weight=None) -> float:
    """ECE of a probability ``score`` for the event ``y_true`` (e.g. "is a supernova"), optionally
    with sample weights.

    >>> binary_ece([1, 0, 1, 1], [0.75, 0.75, 0.75, 0.75], n_bins=4)
    0.0
    >>> binary_ece([1, 0], [0.5, 0.5], n_bins=4, weight=[1.0, 3.0])  # the weights make it 25 % positive
    0.25
    """
    y, s = _binary_inputs(y_true, score)
    return _ece_from_bins(reliability(s, y, n_bins, weight))


def prior_shift_weights(is_event, event_share: float) -> np.ndarray:
    """(N,) sample weights that give the events `is_event` a share `event_share` of the total weight:
    a test set reweighted to a stream's mix (importance weights of a label shift).

    >>> prior_shift_weights([True, False, False, False], 0.5).tolist()
    [2.0, 0.6666666666666666, 0.6666666666666666, 0.6666666666666666]
    """
    is_event = np.asarray(is_event, dtype=bool)
    share = is_event.mean()
    if share in (0.0, 1.0):
        raise ValueError("prior_shift_weights: need both events and non-events")
    return np.where(is_event, event_share / share, (1.0 - event_share) / (1.0 - share))


def bootstrap_macro_f1(y_true, y_pred, n_classes: int = N_CLASSES, n_resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> list[float]:
    """95 % bootstrap interval ``[low, high]`` of `macro_f1`: objects resampled with replacement.

    >>> low, high = bootstrap_macro_f1([0, 1, 1, 0] * 25, [0, 1, 0, 0] * 25, 2)
    >>> low < macro_f1([0, 1, 1, 0] * 25, [0, 1, 0, 0] * 25, 2) < high
    True
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    return _bootstrap_interval(lambda t, p: macro_f1(t, p, n_classes), (y_true, y_pred), n_resamples, seed)


def bootstrap_roc_auc(y_true, score, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                      stratified: bool = False) -> list[float]:
    """95 % bootstrap interval ``[low, high]`` of `roc_auc`: objects resampled with replacement.

    `stratified` resamples positives and negatives apart, so that every resample keeps both classes and
    their counts: for the few positives of a small test part, where a plain resample would often draw
    none. A sample separated perfectly gives ``[1, 1]``: every resample is separated too, so the interval
    then says nothing of a larger sample.

    >>> low, high = bootstrap_roc_auc([0, 1, 1, 0] * 25, [0.2, 0.9, 0.3, 0.4] * 25)
    >>> low < roc_auc([0, 1, 1, 0] * 25, [0.2, 0.9, 0.3, 0.4] * 25) < high
    True
    >>> low, high = bootstrap_roc_auc([1, 1, 0, 0, 0, 0], [0.9, 0.3, 0.4, 0.1, 0.2, 0.5], stratified=True)
    >>> 0.0 <= low < roc_auc([1, 1, 0, 0, 0, 0], [0.9, 0.3, 0.4, 0.1, 0.2, 0.5]) < high <= 1.0
    True
    """
    y_true, score = np.asarray(y_true, dtype=bool), np.asarray(score, dtype=np.float64)
    return _bootstrap_interval(roc_auc, (y_true, score), n_resamples, seed, strata=y_true if stratified else None)


def bootstrap_roc_auc_difference(y_true, score_a, score_b, n_resamples: int = BOOTSTRAP_RESAMPLES,
                                 seed: int = 0) -> list[float]:
    """95 % paired bootstrap interval of ``roc_auc(score_a) - roc_auc(score_b)`` on the same objects
    (each resample scores both on the same rows; positives and negatives resampled apart, as
    `bootstrap_roc_auc` with ``stratified``). An interval that holds 0 says the two rank these objects equally
    well within what the sample can tell.

    >>> truth = np.array([1] * 20 + [0] * 20)
    >>> perfect, coin = truth + 0.0, np.tile([0.2, 0.8], 20)
    >>> bootstrap_roc_auc_difference(truth, perfect, coin)[0] > 0
    True
    """
    y_true = np.asarray(y_true, dtype=bool)
    arrays = (y_true, np.asarray(score_a, dtype=np.float64), np.asarray(score_b, dtype=np.float64))
    return _bootstrap_interval(lambda t, a, b: roc_auc(t, a) - roc_auc(t, b), arrays, n_resamples, seed,
                               strata=y_true)


def bootstrap_macro_f1_difference(y_true, y_pred_a, y_pred_b, n_classes: int = N_CLASSES,
                                  n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[float]:
    """95 % paired bootstrap interval of ``macro_f1(a) - macro_f1(b)``: both answers scored on the same
    resampled objects, so that the interval measures their difference, not each one's own spread.

    >>> truth = np.array([0, 1, 2] * 30)
    >>> bootstrap_macro_f1_difference(truth, truth, np.zeros(90, int), 3)[0] > 0
    True
    """
    arrays = tuple(np.asarray(a, dtype=np.int64) for a in (y_true, y_pred_a, y_pred_b))
    return _bootstrap_interval(lambda t, a, b: macro_f1(t, a, n_classes) - macro_f1(t, b, n_classes), arrays,
                               n_resamples, seed)


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> list[float] | None:
    """95 % Wilson score interval ``[low, high]`` of the proportion ``successes / trials`` (None
    for no trials). Unlike the normal approximation it stays inside [0, 1] and is honest for the
    handful of objects a rule is judged on: 5 of 7 gives 0.36-0.92.

    >>> [round(x, 2) for x in wilson_interval(5, 7)]
    [0.36, 0.92]
    """
    if trials == 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def _bootstrap_interval(statistic, arrays: tuple[np.ndarray, ...], n_resamples: int, seed: int,
                        strata: np.ndarray | None = None) -> list[float]:
    """95 % interval of ``statistic(*arrays)`` over `n_resamples` resamplings of the rows (same rows in
    each array); with `strata`, each stratum's rows are resampled among themselves."""
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    if strata is None:
        draws = rng.integers(0, n, (n_resamples, n))
    else:
        groups = [np.flatnonzero(strata == value) for value in np.unique(strata)]
        draws = np.concatenate([g[rng.integers(0, len(g), (n_resamples, len(g)))] for g in groups], axis=1)
    values = [statistic(*(a[idx] for a in arrays)) for idx in draws]
    return np.nanpercentile(values, [2.5, 97.5]).tolist()


def _nan_to_none(x):
    """JSON has no NaN: floats that are NaN become None, recursively in lists."""
    if isinstance(x, (list, tuple)):
        return [_nan_to_none(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if np.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _one_vs_rest(y_true_bool: np.ndarray, score: np.ndarray, n_bins: int) -> dict:
    return {
        "n_positive": int(y_true_bool.sum()),
        "prevalence": _nan_to_none(y_true_bool.mean()) if y_true_bool.size else None,
        "roc_auc": _nan_to_none(roc_auc(y_true_bool, score)),
        "pr_auc": _nan_to_none(average_precision(y_true_bool, score)),
        "ece": _nan_to_none(binary_ece(y_true_bool, score, n_bins)) if y_true_bool.size else None,
    }


def typing_report(probs: np.ndarray, y_true: np.ndarray, n_bins: int = ECE_BINS,
                  class_names=CLASS_NAMES) -> dict:
    """Typing among the classes present in the truth: given that a curve is one of them, which one.

    The probabilities of the present classes, renormalised to sum to 1, pick the answer; on the real ZTF BTS
    set (supernovae and TDEs) this is SN typing, which the other classes' probabilities do not enter.

    Parameters
    ----------
    probs : (N, C) float64 ndarray
        Class probabilities in `models.taxonomy.CLASS_IDS` order.
    y_true : (N,) int64 ndarray
        True class indices.

    Returns
    -------
    dict
        ``classes`` (the present classes' names), ``accuracy``, ``macro_f1``, and ``ia_vs_rest``
        ({n_positive, prevalence, roc_auc, roc_auc_ci95 (`bootstrap_roc_auc`), pr_auc, ece} of the
        renormalised P(SN Ia); None without Ia in the truth).

    >>> p = np.zeros((3, N_CLASSES)); p[:, IA_INDEX] = [0.2, 0.1, 0.05]; p[:, 2] = [0.1, 0.3, 0.05]
    >>> p[:, 5] = 1 - p.sum(axis=1)
    >>> rep = typing_report(p, np.array([IA_INDEX, 2, 2]))
    >>> rep["classes"], rep["accuracy"], rep["ia_vs_rest"]["roc_auc"]
    (['Ia', 'II'], 0.6666666666666666, 1.0)
    """
    present = np.unique(y_true)  # (K,) sorted class indices
    within = probs[:, present]
    within = within / np.maximum(within.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)  # (N, K)
    y_pred = present[within.argmax(axis=1)] if len(probs) else np.empty(0, np.int64)
    scores = per_class_scores(confusion_matrix(y_true, y_pred, probs.shape[1]))
    ia = np.flatnonzero(present == IA_INDEX)
    return {"classes": [class_names[i] for i in present],
            "accuracy": _nan_to_none(float(np.mean(y_pred == y_true))) if len(y_true) else None,
            "macro_f1": _nan_to_none(float(scores["f1"][present].mean())) if len(present) else None,
            "ia_vs_rest": _ia_vs_rest(y_true == IA_INDEX, within[:, ia[0]], n_bins) if len(ia) else None}


def _ia_vs_rest(is_ia: np.ndarray, p_ia: np.ndarray, n_bins: int) -> dict:
    out = _one_vs_rest(is_ia, p_ia, n_bins)
    both = 0 < out["n_positive"] < len(is_ia)
    return out | {"roc_auc_ci95": _nan_to_none(bootstrap_roc_auc(is_ia, p_ia)) if both else None}


def classification_report(probs, y_true, n_bins: int = ECE_BINS, class_names=CLASS_NAMES) -> dict:
    """Every metric of the evaluation for one model on one set, as a JSON-ready dict.

    Parameters
    ----------
    probs : (N, C) array-like of float
        Class probabilities in `models.taxonomy.CLASS_IDS` order.
    y_true : (N,) array-like of int
        True class indices (`models.taxonomy.class_indices`).
    n_bins : int
        Bins of the ECEs and the reliability diagram.
    class_names : sequence of str, length C

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``macro_f1``, ``per_class`` ({name: precision,
        recall, f1, support}), ``confusion_matrix`` (C x C lists, rows true),
        ``sn_vs_rest`` and ``flare_vs_rest`` ({n_positive, prevalence, roc_auc,
        pr_auc, ece}, scored with ``sn_likelihood`` and ``flare_likelihood``),
        ``ece`` (top-label) and ``reliability`` (bin lists), ``macro_f1_ci95`` (`bootstrap_macro_f1`),
        ``typing`` (`typing_report`). NaN is written as None.

    >>> rep = classification_report(np.eye(N_CLASSES)[[0, 4, 4]], [0, 4, 2])
    >>> rep["n"], round(rep["macro_f1"], 3), rep["flare_vs_rest"]["pr_auc"]
    (3, 0.556, 0.5)
    """
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    n_classes = probs.shape[1] if probs.ndim == 2 else -1
    if probs.ndim != 2 or probs.shape[0] != y_true.shape[0] or n_classes != len(class_names):
        raise ValueError(f"probs {probs.shape}, y_true {y_true.shape}: need (N, {len(class_names)}) and (N,)")
    y_pred = probs.argmax(axis=1) if len(probs) else np.empty(0, np.int64)
    cm = confusion_matrix(y_true, y_pred, n_classes)
    scores = per_class_scores(cm)
    present = scores["support"] > 0
    bins = reliability(probs.max(axis=1) if len(probs) else np.empty(0), y_pred == y_true, n_bins)
    is_sn = np.isin(y_true, SN_LIKE_INDICES)
    return {
        "n": int(len(y_true)),
        "accuracy": _nan_to_none(float(np.mean(y_pred == y_true))) if len(y_true) else None,
        "macro_f1": _nan_to_none(float(scores["f1"][present].mean())) if present.any() else None,
        "macro_f1_ci95": _nan_to_none(bootstrap_macro_f1(y_true, y_pred, n_classes)) if len(y_true) else None,
        "per_class": {
            name: {"precision": _nan_to_none(scores["precision"][i]), "recall": _nan_to_none(scores["recall"][i]),
                   "f1": _nan_to_none(scores["f1"][i]), "support": int(scores["support"][i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
        "sn_vs_rest": _one_vs_rest(is_sn, probs[:, list(SN_LIKE_INDICES)].sum(axis=1), n_bins),
        "flare_vs_rest": _one_vs_rest(y_true == FLARE_INDEX, probs[:, FLARE_INDEX], n_bins),
        "typing": typing_report(probs, y_true, n_bins, class_names),
        "ece": _nan_to_none(_ece_from_bins(bins)),
        "reliability": {"edges": bins["edges"].tolist(), "count": bins["count"].tolist(),
                        "confidence": _nan_to_none(bins["confidence"].tolist()),
                        "accuracy": _nan_to_none(bins["accuracy"].tolist())},
    }

"""The feature peer: ``light-curve`` features per band plus global ones, into gradient-boosted trees."""
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np

from models.bands import BAND_NAMES
from models.encode import context_features
from models.lightcurve import LightCurve
from models.taxonomy import N_CLASSES, class_indices

log = logging.getLogger(__name__)


def augment_with_prefixes(curves: Sequence[LightCurve], class_ids, rng: np.random.Generator,
                          n_prefixes: int = 2, scheme: str = "log") -> tuple[list[LightCurve], np.ndarray]:
    """Whole curves plus ``n_prefixes`` random prefixes of each (cut at a random detection).

    Parameters
    ----------
    curves : sequence of LightCurve, length N
    class_ids : (N,) array-like of int
        ELAsTiCC2 class ids.
    rng : numpy.random.Generator
    n_prefixes : int
        Prefixes per curve, drawn by `training.prefixes.random_prefixes`.
    scheme : {"uniform", "log"}
        How the number of kept detections is drawn; "log" favours young prefixes.

    Returns
    -------
    curves : list of LightCurve, length N (1 + n_prefixes)
    class_ids : (N (1 + n_prefixes),) int64 ndarray
    """
    from training.prefixes import random_prefixes

    curves = list(curves)
    out = list(curves)
    for _ in range(n_prefixes):
        out += random_prefixes(curves, rng, scheme=scheme)
    return out, np.tile(np.asarray(class_ids, dtype=np.int64), 1 + n_prefixes)


GLOBAL_FEATURE_NAMES: tuple[str, ...] = (
    "log_n_points", "log_n_detections", "age_days", "detection_span_days", "min_detection_gap_days",
    "log_max_snr", "log_peak_flux_njy", "positive_detection_fraction", "last_over_peak_flux",
    "peak_time_days", "days_since_peak", "pre_detection_max_snr",
)


def _segment_ids(lengths: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(lengths)), lengths)


def global_features(curves: Sequence[LightCurve]) -> np.ndarray:
    """Band-independent features of each curve, vectorised over all points at once.

    Times are days from the curve's first detection (the alert clock); only
    detections enter the flux features, while ``pre_detection_max_snr`` looks
    at the forced photometry / upper limits before the first detection.
    ``min_detection_gap_days`` keeps sub-day resolution: a flare often shows as
    two detections 30 minutes apart with a large change.

    Parameters
    ----------
    curves : sequence of LightCurve, length N
        Non-empty curves; a curve without detections gets NaN features.

    Returns
    -------
    (N, len(GLOBAL_FEATURE_NAMES)) float32 ndarray
        NaN where a feature is undefined (e.g. gaps with one detection).
    """
    n = len(curves)
    lengths = np.fromiter((len(c) for c in curves), dtype=np.int64, count=n)  # (N,)
    seg = _segment_ids(lengths)  # (P,) curve of each point
    mjd = np.concatenate([c.mjd_tai for c in curves])  # (P,)
    flux = np.concatenate([c.flux_njy for c in curves]).astype(np.float64)  # (P,)
    err = np.concatenate([c.flux_err_njy for c in curves]).astype(np.float64)  # (P,)
    det = np.concatenate([c.is_detection for c in curves])  # (P,)
    snr = flux / err  # (P,)

    n_det = np.bincount(seg, weights=det, minlength=n)  # (N,)
    t_first = np.full(n, np.inf)
    np.minimum.at(t_first, seg[det], mjd[det])
    has_det = np.isfinite(t_first)
    t = mjd - t_first[seg]  # (P,) days from first detection; -inf/nan rows never used without det
    age = np.full(n, -np.inf)
    np.maximum.at(age, seg, t)
    t_last_det = np.full(n, -np.inf)
    np.maximum.at(t_last_det, seg[det], t[det])

    # Peak detection (largest flux) per curve: sort detections by (curve, flux), take each curve's last.
    d_idx = np.flatnonzero(det)
    order = d_idx[np.lexsort((flux[d_idx], seg[d_idx]))]  # detections grouped by curve, flux ascending
    last_of_curve = np.flatnonzero(np.r_[seg[order][1:] != seg[order][:-1], True]) if len(order) else order
    peak_point = order[last_of_curve]  # one per curve with detections
    peak_flux = np.full(n, np.nan)
    peak_time = np.full(n, np.nan)
    peak_flux[seg[peak_point]] = flux[peak_point]
    peak_time[seg[peak_point]] = t[peak_point]
    # Last detection per curve (curves are time-sorted, so the last detection index of each segment).
    last_det_flux = np.full(n, np.nan)
    by_curve = d_idx  # already grouped by curve, time-sorted within
    if len(by_curve):
        ends = np.flatnonzero(np.r_[seg[by_curve][1:] != seg[by_curve][:-1], True])
        last_det_flux[seg[by_curve[ends]]] = flux[by_curve[ends]]

    # Smallest gap between consecutive detections of one curve.
    gap = np.full(n, np.inf)
    if len(d_idx) > 1:
        same = seg[d_idx][1:] == seg[d_idx][:-1]
        np.minimum.at(gap, seg[d_idx][1:][same], np.diff(mjd[d_idx])[same])
    max_snr = np.full(n, 0.0)
    np.maximum.at(max_snr, seg[det], np.abs(snr[det]))
    positive = np.bincount(seg, weights=det & (flux > 0), minlength=n)
    pre = ~det & (t < 0)
    pre_snr = np.full(n, np.nan)
    if pre.any():
        pre_max = np.full(n, -np.inf)
        np.maximum.at(pre_max, seg[pre], np.abs(snr[pre]))
        pre_snr = np.where(np.isfinite(pre_max), pre_max, np.nan)

    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.stack([
            np.log10(lengths),
            np.log10(np.maximum(n_det, 1)),
            age,
            t_last_det,
            np.where(np.isfinite(gap), gap, np.nan),
            np.log10(np.where(max_snr > 0, max_snr, np.nan)),
            np.log10(np.where(peak_flux > 0, peak_flux, np.nan)),
            positive / np.maximum(n_det, 1),
            last_det_flux / peak_flux,
            peak_time,
            t_last_det - peak_time,
            pre_snr,
        ], axis=1)  # (N, G)
    out[~has_det] = np.nan
    return out.astype(np.float32)


_FEATURE_LIMIT = 1e30  # |feature| cap, well inside float32
_EXTRACT_CHUNK = 2000  # curves per light-curve call (a progress-bar step)
_MIN_CURVES_FOR_EARLY_STOPPING = 100  # fewer: train on all of them for max_iter rounds
# Spacing given to points of one band at one time (days, ~9 s): light-curve's Rust features assume
# distinct times per band and some panic otherwise (MaximumSlope: "all points have the same time");
# the ZTF BTS times are rounded to 0.1 d, so a night's two points in a band often coincide.
_REPEATED_TIME_STEP_DAYS = 1e-4


def _separate_repeated_times(t: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times made distinct within each band: the k-th repeat of a (band, time) pair moves k steps later.

    >>> _separate_repeated_times(np.array([0.0, 0.0, 0.0, 1.0]), np.array([1, 1, 2, 1]))[0].tolist()
    [0.0, 0.0001, 0.0, 1.0]
    """
    order = np.lexsort((t, band))  # grouped by band, time-sorted within
    ts, bs = t[order], band[order]
    new_group = np.r_[True, (ts[1:] != ts[:-1]) | (bs[1:] != bs[:-1])]
    starts = np.flatnonzero(new_group)
    rank = np.arange(len(ts)) - np.repeat(starts, np.diff(np.r_[starts, len(ts)]))  # repeat index in group
    out = t.copy()
    out[order] = ts + rank * _REPEATED_TIME_STEP_DAYS
    return out, band


def _band_features(bands: Sequence[str], fit_algorithm: str):
    """The per-band ``light-curve`` extractor: parametric fits and robust statistics, on flux."""
    import light_curve as lc

    kw = {"bands": list(bands)}
    return lc.Extractor(
        lc.BazinFit(fit_algorithm, **kw),  # 5 parameters + reduced chi2; >= 6 points
        lc.VillarFit(fit_algorithm, **kw),  # 7 parameters + reduced chi2; >= 8 points
        lc.Amplitude(**kw), lc.StandardDeviation(**kw), lc.Skew(**kw), lc.Kurtosis(**kw),
        lc.BeyondNStd(1.0, **kw), lc.LinearFit(**kw), lc.MaximumSlope(**kw), lc.Median(**kw),
        lc.WeightedMean(**kw), lc.ReducedChi2(**kw), lc.ObservationCount(**kw),
        lc.InterPercentileRange(0.25, **kw), lc.StetsonK(**kw), lc.ExcessVariance(**kw), lc.Eta(**kw),
        lc.Duration(**kw), lc.MinimumTimeInterval(**kw),
    )


class FeatureBaseline:
    """Light-curve features + gradient-boosted trees, the ALeRCE-style peer.

    Per band (each band of the training data): Bazin and Villar fits to the
    flux (nJy) and 17 statistics from ``light-curve``; plus
    `global_features`. Times are days from the first detection. All points of
    a curve enter the per-band features (forced photometry and upper limits,
    stored as flux 0 with their sigma, included), as the transformer sees
    them. Missing values (too few points in a band for a fit, a band not
    observed yet) stay NaN, which `HistGradientBoostingClassifier` handles
    natively.

    Parameters
    ----------
    fit_algorithm : str
        ``light-curve`` least-squares algorithm of the Bazin/Villar fits:
        ``"mcmc-lmsder"`` (default: MCMC start then Levenberg-Marquardt, robust,
        ~270 whole six-band LSST curves/s on 2 cores) or ``"lmsder"`` (~10x
        faster, for tests).
    max_iter, learning_rate, max_leaf_nodes : classifier settings
        Of `sklearn.ensemble.HistGradientBoostingClassifier`; 10 % of the
        training curves (with their prefixes) are held out for early stopping.
    n_prefixes : int
        Random prefixes per training curve added to the whole curves
        (`augment_with_prefixes`); 0 trains on whole curves only.
    seed : int
    n_jobs : int
        Threads of the feature extraction; default all cores.
    classifier_threads : int
        OpenMP threads of the tree classifier. Default 1: on this 2-core
        machine, with torch or another process busy, OpenMP's spin-waiting made
        a 2-thread fit over 10x slower than a 1-thread one (37 s against 3 s).
    progress : bool
        Progress bar over the feature extraction of large sets.
    with_context : bool
        Append the alert context, transformed as the transformer's context token sees it
        (`models.encode.context_features`; NaN where unknown), so the peer gets the same information.
    """

    name = "features"

    def __init__(self, fit_algorithm: str = "mcmc-lmsder", max_iter: int = 300, learning_rate: float = 0.1,
                 max_leaf_nodes: int = 31, n_prefixes: int = 2, seed: int = 0, n_jobs: int | None = None,
                 classifier_threads: int = 1, progress: bool = False, with_context: bool = False):
        self.with_context = with_context
        self.fit_algorithm = fit_algorithm
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.n_prefixes = n_prefixes
        self.seed = seed
        self.n_jobs = n_jobs or os.cpu_count() or 1
        self.classifier_threads = classifier_threads
        self.progress = progress
        self.bands: list[int] | None = None  # band codes seen in training, in code order
        self.classifier = None
        self.feature_names: list[str] = []
        self.used_features: np.ndarray | None = None  # (F,) bool: the feature columns the classifier was fit on

    def features(self, curves: Sequence[LightCurve], contexts: np.ndarray | None = None) -> np.ndarray:
        """Feature matrix of ``curves``: per-band ``light-curve`` features, `global_features`, and
        (``with_context``) the context features of their (N, N_CONTEXT) ``contexts``.

        Parameters
        ----------
        curves : sequence of LightCurve, length N
            Each with at least one point; points in bands the model was not
            trained on are ignored by the per-band features.
        contexts : (N, N_CONTEXT) ndarray, optional
            Alert contexts (`models.context`), NaN where unknown; None: all unknown.

        Returns
        -------
        (N, F) float32 ndarray, NaN where undefined.
        """
        if self.bands is None:
            raise RuntimeError("FeatureBaseline: call fit first (the band set comes from the training data)")
        band_labels = np.array(BAND_NAMES)
        extractor = _band_features([BAND_NAMES[b] for b in self.bands], self.fit_algorithm)
        known = np.zeros(len(BAND_NAMES), dtype=bool)
        known[self.bands] = True
        inputs = []
        for c in curves:
            keep = known[c.band]
            t0 = c.mjd_tai[c.is_detection][0] if c.is_detection.any() else c.mjd_tai[0]
            t, band = _separate_repeated_times(c.mjd_tai[keep] - t0, c.band[keep])
            order = np.argsort(t, kind="stable")
            inputs.append((t[order], c.flux_njy[keep][order].astype(np.float64),
                           c.flux_err_njy[keep][order].astype(np.float64), band_labels[band[order]]))
        chunks = range(0, len(inputs), _EXTRACT_CHUNK)
        if self.progress and len(inputs) > _EXTRACT_CHUNK:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="light-curve features", unit="chunk", leave=False, file=sys.stderr)
        band_x = np.concatenate([
            extractor.many(inputs[s:s + _EXTRACT_CHUNK], fill_value=np.nan, sorted=True, check=False,
                           n_jobs=self.n_jobs) for s in chunks
        ]) if inputs else np.zeros((0, len(extractor.names)))
        self.feature_names = [*extractor.names, *GLOBAL_FEATURE_NAMES]
        # A degenerate fit can return huge parameters; clip into float32 range, non-finite -> NaN.
        band_x = np.where(np.isfinite(band_x), np.clip(band_x, -_FEATURE_LIMIT, _FEATURE_LIMIT), np.nan)
        x = np.concatenate([band_x.astype(np.float32), global_features(curves)], axis=1)  # (N, F)
        if not self.with_context:
            return x
        t_ref = np.array([c.mjd_tai[c.is_detection][0] if c.is_detection.any() else c.mjd_tai[0] for c in curves])
        context, known = context_features(contexts, t_ref, len(curves))
        return np.concatenate([x, np.where(known, context, np.nan).astype(np.float32)], axis=1)

    def fit(self, curves: Sequence[LightCurve], class_ids, contexts: np.ndarray | None = None) -> "FeatureBaseline":
        """Train on ``curves`` (plus their random prefixes) labelled with ELAsTiCC2 ``class_ids``, with their
        ``contexts`` if the peer uses them."""
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        curves = list(curves)
        self.bands = sorted({int(b) for c in curves for b in np.unique(c.band)})
        rng = np.random.default_rng(self.seed)
        train_curves, train_ids = augment_with_prefixes(curves, class_ids, rng, self.n_prefixes)
        x = self.features(train_curves, None if contexts is None else np.tile(contexts, (1 + self.n_prefixes, 1)))
        y = class_indices(train_ids)
        # Early stopping on 10 % of the *curves*, all their prefixes with them: a random 10 % of rows
        # would put prefixes of one curve on both sides and stop late.
        is_val = np.zeros(len(curves), dtype=bool)
        if len(curves) >= _MIN_CURVES_FOR_EARLY_STOPPING:
            is_val[rng.permutation(len(curves))[:len(curves) // 10]] = True
        val_row = np.tile(is_val, 1 + self.n_prefixes)  # rows are [curves, prefixes 1, prefixes 2, ...]
        self.classifier = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            early_stopping=bool(is_val.any()), n_iter_no_change=20, random_state=self.seed)
        # A feature never defined in the training rows (a band seen only in held-out curves) would have no bins.
        self.used_features = ~np.all(np.isnan(x[~val_row]), axis=0)  # (F,)
        x = x[:, self.used_features]
        with threadpool_limits(self.classifier_threads, user_api="openmp"):
            if is_val.any():
                self.classifier.fit(x[~val_row], y[~val_row], X_val=x[val_row], y_val=y[val_row])
            else:
                self.classifier.fit(x, y)
        log.info("feature baseline trained n_curves=%d n_rows=%d n_features=%d iterations=%d",
                 len(curves), len(y), x.shape[1], self.classifier.n_iter_)
        return self

    def predict_proba(self, curves: Sequence[LightCurve], contexts: np.ndarray | None = None) -> np.ndarray:
        """(N, C) probabilities in `CLASS_IDS` order; classes unseen in training get 0."""
        if self.classifier is None:
            raise RuntimeError("FeatureBaseline: call fit first")
        from threadpoolctl import threadpool_limits

        probs = np.zeros((len(curves), N_CLASSES), dtype=np.float64)
        if len(curves):
            x = self.features(curves, contexts)[:, self.used_features]
            with threadpool_limits(self.classifier_threads, user_api="openmp"):
                probs[:, self.classifier.classes_] = self.classifier.predict_proba(x)
        return probs

    def predict_sets(self, sets: Mapping[str, Sequence[LightCurve]]) -> dict[str, tuple[np.ndarray, float]]:
        """`predict_proba` of each named set, with its wall time in seconds (features included)."""
        return _timed_sets(self.predict_proba, sets)


def _timed_sets(predict, sets: Mapping[str, Sequence[LightCurve]]) -> dict[str, tuple[np.ndarray, float]]:
    out = {}
    for name, curves in sets.items():
        start = time.perf_counter()
        probs = predict(curves)
        out[name] = (probs, time.perf_counter() - start)
    return out

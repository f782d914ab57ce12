"""Peer classifiers that the evaluation runs beside the transformer, on the same data.

Two published approaches that install from PyPI (SCIENCE.md section 5, "Peers"):

- `FeatureBaseline`: hand-made light-curve features from the ``light-curve``
  package (Bazin and Villar fits plus standard statistics, per band, on flux)
  and a few global ones, into a gradient-boosted tree classifier (scikit-learn's
  `HistGradientBoostingClassifier`), the recipe of ALeRCE's light-curve
  classifier (Sánchez-Sáez et al. 2021). Extraction runs in Rust over many
  curves at once (`light_curve.Extractor.many`).
- `SuperNNovaPeer`: SuperNNova (Möller & de Boissière 2020), a recurrent
  network on the photometry. It pins astropy<6, so it lives in its own virtual
  environment (`ensure_supernnova_venv`) and runs through
  ``training/supernnova_runner.py`` in a subprocess; light curves cross as
  SNANA-style CSV files.

Both expose ``fit(curves, class_ids)`` and ``predict_proba(curves) -> (N, C)``
over the columns of `models.taxonomy.CLASS_IDS` (a class absent from training
gets probability 0), and ``predict_sets({name: curves}) -> {name: (probs,
seconds)}`` for the evaluation, which times inference per set.

Both are trained on random prefixes as well as whole curves (SuperNNova by its
own ``random_length`` option, the feature baseline by `augment_with_prefixes`),
as the transformer is, so that their early scores are not handicapped by never
having seen a young light curve.
"""
import csv
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from models.bands import BAND_NAMES
from models.encode import context_features
from models.errors import AlertformerError
from models.lightcurve import LightCurve
from models.taxonomy import CLASS_IDS, CLASS_NAMES, N_CLASSES, class_indices

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


# ---------------------------------------------------------------------------------------------
# Feature baseline
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# SuperNNova
# ---------------------------------------------------------------------------------------------

SUPERNNOVA_REQUIREMENTS: tuple[str, ...] = (
    "supernnova==3.0.51",
    # astropy 5.3 (SuperNNova's pin) is built against NumPy 1.x and fails to import under NumPy 2.
    "numpy<2",
)
DEFAULT_SUPERNNOVA_VENV = (Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                           / "alertformer" / "supernnova-venv")
RUNNER = Path(__file__).with_name("supernnova_runner.py")
_READY_MARKER = ".alertformer-ready"
VENV_INSTALL_TIMEOUT_S = 1800.0  # pip resolves and downloads SuperNNova's ~60 dependencies (mlflow...)

# SNANA's FLUXCAL has zero point 27.5 AB; nJy has 31.4: FLUXCAL = flux_nJy * 10**(-0.4 * (31.4 - 27.5)).
NJY_TO_FLUXCAL = 10.0 ** (-0.4 * (31.4 - 27.5))
# SuperNNova names columns FLUXCAL_<filter>: one character per band. ZTF and LSST g/r/i differ, but a
# model is trained on one survey's curves, so the letters never mix within one model.
_FILTER_LETTER = {name: name.split("-")[1] for name in BAND_NAMES}
# Class names for SuperNNova's --sntypes, in CLASS_IDS order (its output columns follow that order,
# with the "Ia" target first, which CLASS_IDS[0] is).
_SNN_TYPE_NAMES = {cid: name.replace(" ", "").replace("/", "") for cid, name in zip(CLASS_IDS, CLASS_NAMES)}


class SuperNNovaError(AlertformerError, RuntimeError):
    """SuperNNova could not be installed or run; the message carries the concrete error."""


def ensure_supernnova_venv(venv_dir=DEFAULT_SUPERNNOVA_VENV, python: str = sys.executable,
                           timeout_s: float = VENV_INSTALL_TIMEOUT_S) -> Path:
    """SuperNNova's own virtual environment, created and installed once, then reused.

    The environment is made with ``--system-site-packages`` because SuperNNova
    uses PyTorch without declaring it: it borrows this interpreter's torch.
    Its own pins (astropy<6, pandas<3, numpy<2) install into the environment
    and shadow the project's versions there only; the project's environment is
    never changed. A marker file records the installed requirements, so a
    half-finished install is redone.

    Parameters
    ----------
    venv_dir : str or Path
        Where the environment lives (default ``~/.cache/alertformer/supernnova-venv``).
    python : str
        Interpreter to create it from (it must have torch).
    timeout_s : float
        Limit of the pip install.

    Returns
    -------
    Path
        The environment's ``python``.

    Raises
    ------
    SuperNNovaError
        With pip's last output lines if the install fails.
    """
    venv_dir = Path(venv_dir)
    venv_python = venv_dir / "bin" / "python"
    marker = venv_dir / _READY_MARKER
    wanted = "\n".join(SUPERNNOVA_REQUIREMENTS)
    if venv_python.exists() and marker.exists() and marker.read_text() == wanted:
        return venv_python
    log.info("creating SuperNNova environment venv=%s requirements=%s", venv_dir, " ".join(SUPERNNOVA_REQUIREMENTS))
    if venv_dir.exists():
        shutil.rmtree(venv_dir)
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    steps = [[python, "-m", "venv", "--system-site-packages", str(venv_dir)],
             [str(venv_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              *SUPERNNOVA_REQUIREMENTS],
             [str(venv_python), "-c", "import multiprocessing; multiprocessing.cpu_count = lambda: 3; "
              "import torch, supernnova.validation.validate_onthefly"]]
    for cmd in steps:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as err:
            raise SuperNNovaError(f"{' '.join(cmd[:4])}...: timed out after {timeout_s:.0f} s") from err
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise SuperNNovaError(f"{' '.join(cmd[:4])}... exited {done.returncode}:\n{tail}")
    marker.write_text(wanted)
    return venv_python


def _write_csv(path: Path, header: Sequence[str], columns: Sequence[np.ndarray]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(zip(*(c.tolist() for c in columns)))


def write_snana_csv(phot_path, curves: Sequence[LightCurve], snids: Sequence[str],
                    head_path=None, class_ids=None) -> None:
    """Write curves as SuperNNova's CSV input: a PHOT file and, with labels, a HEAD file.

    PHOT columns: SNID, MJD, FLUXCAL (zero point 27.5, from nJy), FLUXCALERR,
    FLT (one letter per band). HEAD columns: SNID, SNTYPE (the ELAsTiCC2 class
    id), PEAKMJD (here the first detection's MJD: SuperNNova only uses it for
    plots, and the true peak would leak the label's timing).

    Parameters
    ----------
    phot_path : str or Path
    curves : sequence of LightCurve, length N
    snids : sequence of str, length N
        Unique ids without commas.
    head_path : str or Path, optional
    class_ids : (N,) array-like of int, optional
        Needed with ``head_path``.
    """
    lengths = np.fromiter((len(c) for c in curves), dtype=np.int64, count=len(curves))
    snid_col = np.repeat(np.asarray(snids, dtype=object), lengths)
    mjd = np.concatenate([c.mjd_tai for c in curves])
    flux = np.concatenate([c.flux_njy for c in curves]).astype(np.float64) * NJY_TO_FLUXCAL
    err = np.concatenate([c.flux_err_njy for c in curves]).astype(np.float64) * NJY_TO_FLUXCAL
    letters = np.array([_FILTER_LETTER[b] for b in BAND_NAMES], dtype=object)
    flt = letters[np.concatenate([c.band for c in curves]).astype(np.intp)]
    _write_csv(Path(phot_path), ("SNID", "MJD", "FLUXCAL", "FLUXCALERR", "FLT"),
               (snid_col, np.round(mjd, 6), np.round(flux, 5), np.round(err, 5), flt))
    if head_path is not None:
        first_det = np.array([c.mjd_tai[c.is_detection][0] if c.is_detection.any() else c.mjd_tai[0]
                              for c in curves])
        _write_csv(Path(head_path), ("SNID", "SNTYPE", "PEAKMJD"),
                   (np.asarray(snids, dtype=object), np.asarray(class_ids, dtype=np.int64), first_det))


class SuperNNovaPeer:
    """SuperNNova's RNN (an LSTM; defaults of its ``train_rnn``), run in its own environment.

    `fit` writes the training curves as SNANA CSV, runs the data-set build
    and training in the subprocess, and keeps the model file; `predict_sets`
    classifies any number of named sets in one subprocess (SuperNNova's
    on-the-fly classifier), so its import cost is paid once, and reports the
    runner's own timing of each set. SuperNNova groups observations less than
    8 hours apart into one time step and trains on random-length sequences.

    Its data-set builder needs a test split: the first 20 training curves are
    copied under new ids to serve as it (their SuperNNova test metrics are
    never read), so nothing is withheld from training; SuperNNova itself keeps
    10 % of the training curves for validation (early stopping and learning
    rate schedule).

    Parameters
    ----------
    work_dir : str or Path, optional
        Where the CSVs, SuperNNova's database and model go; default a new
        temporary directory.
    venv_dir : str or Path
        Its environment (`ensure_supernnova_venv`).
    nb_epoch, batch_size, hidden_dim : int
        SuperNNova training settings, its own defaults (90 epochs, stopped
        early on a validation plateau; 128; 32). On 2 idle cores an epoch of
        5,000 simulated LSST curves takes ~5 s.
    norm : str
        SuperNNova's flux normalisation (``--norm``). Default ``"cosmo"`` (each
        curve's fluxes over its maximum), not SuperNNova's ``"global"``
        (``log(flux - min)`` with the training set's minimum): variable stars'
        difference fluxes reach -8e4 FLUXCAL (RR Lyrae and EBs below their
        template), which makes ``log(flux - min)`` flat for every supernova.
        On SuperNNova's own validation split of 1,500 simulated LSST curves,
        "global" reached 19 % accuracy after 30 epochs, "cosmo" 41 % after 15.
    seed : int
    device : str
        ``"cpu"`` or ``"cuda"``.
    torch_threads : int
        CPU threads of SuperNNova's torch. Default 1: on this 2-core machine,
        with other processes busy, 2 threads made an epoch ~30x slower than
        on an idle machine (2.5 min against 5 s), the OpenMP spin-wait
        trouble `FeatureBaseline` has too.
    timeout_s : float
        Limit for each subprocess.
    """

    name = "supernnova"

    def __init__(self, work_dir=None, venv_dir=DEFAULT_SUPERNNOVA_VENV, nb_epoch: int = 90,
                 batch_size: int = 128, hidden_dim: int = 32, norm: str = "cosmo", seed: int = 0,
                 device: str = "cpu", torch_threads: int = 1, timeout_s: float = 4 * 3600.0):
        # Absolute: the runner runs with this as its working directory and gets paths in it.
        work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="supernnova-"))
        self.work_dir = work_dir.resolve()
        self.venv_dir = Path(venv_dir)
        self.nb_epoch = nb_epoch
        self.batch_size = batch_size
        self.hidden_dim = hidden_dim
        self.norm = norm
        self.seed = seed
        self.device = device
        self.torch_threads = torch_threads
        self.timeout_s = timeout_s
        self.model_file: str | None = None
        self.filters: list[str] = []
        self.train_seconds: float | None = None
        self.validation: dict = {}  # SuperNNova's own validation accuracy and loss (its 10 % split)
        self._python: Path | None = None

    def _run(self, action: str, job: dict) -> dict:
        if self._python is None:
            self._python = ensure_supernnova_venv(self.venv_dir)
        job_path = self.work_dir / f"{action}_job.json"
        job["result"] = str(self.work_dir / f"{action}_result.json")
        Path(job["result"]).unlink(missing_ok=True)
        job_path.write_text(json.dumps(job))
        log_path = self.work_dir / f"{action}.log"
        log.info("SuperNNova %s running log=%s", action, log_path)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the runner imports nothing of ours
        env.update(MPLBACKEND="Agg", PYTHONWARNINGS="ignore", OMP_NUM_THREADS=str(self.torch_threads),
                   MKL_NUM_THREADS=str(self.torch_threads))
        with open(log_path, "w") as log_file:
            try:
                done = subprocess.run([str(self._python), str(RUNNER), action, str(job_path)], cwd=self.work_dir,
                                      stdout=log_file, stderr=subprocess.STDOUT, env=env, timeout=self.timeout_s)
            except subprocess.TimeoutExpired as err:
                raise SuperNNovaError(f"SuperNNova {action}: timed out after {self.timeout_s:.0f} s "
                                      f"(log: {log_path})") from err
        if done.returncode != 0 or not Path(job["result"]).is_file():
            tail = "\n".join(log_path.read_text(errors="replace").strip().splitlines()[-20:])
            raise SuperNNovaError(f"SuperNNova {action} exited {done.returncode} (log: {log_path}):\n{tail}")
        return json.loads(Path(job["result"]).read_text())

    def fit(self, curves: Sequence[LightCurve], class_ids) -> "SuperNNovaPeer":
        """Train SuperNNova on ``curves`` labelled with ELAsTiCC2 ``class_ids``."""
        curves = list(curves)
        class_ids = np.asarray(class_ids, dtype=np.int64)
        class_indices(class_ids)  # fail early on an unknown class
        self.filters = sorted({_FILTER_LETTER[BAND_NAMES[int(b)]] for c in curves for b in np.unique(c.band)})
        self.work_dir.mkdir(parents=True, exist_ok=True)
        raw = self.work_dir / "raw"
        if raw.exists():
            shutil.rmtree(raw)
        raw.mkdir(parents=True)
        dump = self.work_dir / "dump"
        if dump.exists():
            shutil.rmtree(dump)
        n_dummy = min(20, len(curves))
        snids = [f"t{i}" for i in range(len(curves))] + [f"d{i}" for i in range(n_dummy)]
        write_snana_csv(raw / "train_PHOT.csv", curves + curves[:n_dummy], snids,
                        head_path=raw / "train_HEAD.csv", class_ids=np.r_[class_ids, class_ids[:n_dummy]])
        _write_csv(self.work_dir / "testing_ids.csv", ("SNID",), (np.asarray(snids[len(curves):], dtype=object),))
        result = self._run("train", {
            "dump_dir": str(dump), "raw_dir": str(raw), "testing_ids": str(self.work_dir / "testing_ids.csv"),
            "sntypes": {str(cid): _SNN_TYPE_NAMES[cid] for cid in CLASS_IDS}, "list_filters": self.filters,
            "nb_epoch": self.nb_epoch, "batch_size": self.batch_size, "hidden_dim": self.hidden_dim,
            "norm": self.norm, "seed": self.seed, "use_cuda": self.device.startswith("cuda"),
        })
        if result.get("n_classes") != N_CLASSES:
            raise SuperNNovaError(f"SuperNNova trained {result.get('n_classes')} classes, expected {N_CLASSES}")
        self.model_file = result["model_file"]
        self.train_seconds = result["train_seconds"]
        self.validation = result.get("validation", {})
        log.info("SuperNNova trained seconds=%.0f validation=%s", self.train_seconds, self.validation)
        return self

    def predict_sets(self, sets: Mapping[str, Sequence[LightCurve]]) -> dict[str, tuple[np.ndarray, float]]:
        """Probabilities (N, C) of each named set and SuperNNova's inference seconds for it."""
        if self.model_file is None:
            raise RuntimeError("SuperNNovaPeer: call fit first")
        paths, snid_lists = {}, {}
        for k, (name, curves) in enumerate(sets.items()):
            if not len(curves):
                continue
            snids = [f"s{i}" for i in range(len(curves))]
            paths[name] = self.work_dir / f"predict_{k}_PHOT.csv"
            write_snana_csv(paths[name], list(curves), snids)
            snid_lists[name] = snids
        result = self._run("predict", {"model_file": self.model_file, "device": self.device,
                                       "sets": {name: str(p) for name, p in paths.items()}}) if paths else {}
        out = {}
        for name, curves in sets.items():
            if name not in result:
                out[name] = (np.zeros((0, N_CLASSES)), 0.0)
                continue
            row_of = {s: i for i, s in enumerate(result[name]["snid"])}
            probs = np.asarray(result[name]["probs"], dtype=np.float64)[[row_of[s] for s in snid_lists[name]]]
            out[name] = (probs, float(result[name]["seconds"]))
        for p in paths.values():
            p.unlink(missing_ok=True)
        return out

    def predict_proba(self, curves: Sequence[LightCurve]) -> np.ndarray:
        """(N, C) probabilities in `CLASS_IDS` order."""
        return self.predict_sets({"curves": curves})["curves"][0]

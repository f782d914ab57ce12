"""Prefixes of light curves: what the stream knew at an earlier alert.

A scorer sees an object at each of its alerts, and an alert is triggered by a
detection, so "the light curve as known at alert k" is every point up to and
including the k-th detection: the forced photometry / upper limits before it
stay, later points go. Evaluation cuts curves this way (`first_n_detections`,
`days_after_first_detection`) and training draws random cuts
(`random_prefixes`) so that scores mean something from the first detection on.

Slicing keeps the curve's arrays (views, no copy, no re-validation: a prefix of
a sorted, validated curve is sorted and valid).
"""
from collections.abc import Sequence

import numpy as np

from models.encode import Batch, encode
from models.lightcurve import LightCurve

PREFIX_SCHEMES = ("uniform", "log", "mixed")


def _head(curve: LightCurve, n_points: int) -> LightCurve:
    """The first ``n_points`` points of ``curve`` (views)."""
    return LightCurve(*(getattr(curve, f)[:n_points] for f in LightCurve.FIELDS))


def first_n_detections(curve: LightCurve, n: int) -> LightCurve | None:
    """The curve as known at its ``n``-th detection (the alert that detection triggered).

    Parameters
    ----------
    curve : LightCurve
        Time-sorted photometry.
    n : int
        Number of detections to keep, >= 1.

    Returns
    -------
    LightCurve or None
        Every point up to and including the ``n``-th detection (earlier forced
        photometry and upper limits kept); None when the curve has fewer than
        ``n`` detections, so callers can skip it (evaluation at N_det = n only
        counts objects that reached n detections).

    Raises
    ------
    ValueError
        If ``n < 1``.

    Examples
    --------
    >>> lc = LightCurve.from_arrays([1, 2, 3, 4], [60000.0, 60001.0, 60002.0, 60003.0], [2, 2, 2, 2],
    ...                             [0.0, 500.0, 20.0, 900.0], [100.0] * 4, [False, True, False, True])
    >>> first_n_detections(lc, 1).source_id.tolist()
    [1, 2]
    >>> first_n_detections(lc, 2).source_id.tolist()
    [1, 2, 3, 4]
    >>> first_n_detections(lc, 3) is None
    True
    """
    if n < 1:
        raise ValueError(f"first_n_detections: n={n}, must be >= 1")
    det = np.flatnonzero(curve.is_detection)
    if len(det) < n:
        return None
    return _head(curve, int(det[n - 1]) + 1)


def days_after_first_detection(curve: LightCurve, days: float) -> LightCurve | None:
    """The curve as known at its last alert within ``days`` of the first detection.

    Keeps every point up to and including the last detection at
    ``mjd <= first detection + days``: the view the stream had at the most
    recent alert in that time. Forced photometry after that detection is
    dropped, since no alert carried it yet.

    Parameters
    ----------
    curve : LightCurve
    days : float
        Days after the first detection, >= 0 (0 keeps the first detection and
        anything at the same time).

    Returns
    -------
    LightCurve or None
        None when the curve has no detection.

    Raises
    ------
    ValueError
        If ``days < 0`` or is not finite.

    Examples
    --------
    >>> lc = LightCurve.from_arrays([1, 2, 3, 4], [60000.0, 60001.0, 60003.0, 60009.0], [2, 2, 2, 2],
    ...                             [500.0, 20.0, 900.0, 700.0], [100.0] * 4, [True, False, True, True])
    >>> days_after_first_detection(lc, 2.0).source_id.tolist()
    [1]
    >>> days_after_first_detection(lc, 3.0).source_id.tolist()
    [1, 2, 3]
    """
    if not (np.isfinite(days) and days >= 0):
        raise ValueError(f"days_after_first_detection: days={days}, must be finite and >= 0")
    det = np.flatnonzero(curve.is_detection)
    if len(det) == 0:
        return None
    t_last = curve.mjd_tai[det[0]] + days
    last = det[np.searchsorted(curve.mjd_tai[det], t_last, side="right") - 1]
    return _head(curve, int(last) + 1)


def detections_only(curve: LightCurve) -> LightCurve:
    """The curve without its forced photometry and upper limits (a copy).

    The ZTF BTS light curves hold detections only; training shows the model
    such curves too, so that "no upper limits" does not become a label.
    """
    keep = curve.is_detection
    return LightCurve(*(getattr(curve, f)[keep] for f in LightCurve.FIELDS))


def draw_cut_detections(n_detections: np.ndarray, rng: np.random.Generator, min_detections: int = 1,
                        scheme: str = "uniform") -> np.ndarray:
    """Number of detections to keep per curve, drawn for training augmentation.

    Parameters
    ----------
    n_detections : (B,) int array
        Detections in each full curve.
    rng : numpy.random.Generator
    min_detections : int
        Smallest cut; a curve with fewer detections keeps them all.
    scheme : {"uniform", "log", "mixed"}
        ``"uniform"``: k uniform in ``min_detections..D`` (D = the curve's
        detections), i.e. a cut point uniform among the detections.
        ``"log"``: ``k = floor(exp(u * log(D + 1)))`` with u uniform, so
        P(k) is proportional to log((k+1)/k), about 1/k: for D = 30 the first
        detection is drawn 20 % of the time and k <= 5 half the time, while
        every later cut stays possible. Long curves (an RR Lyrae with 100
        detections) would otherwise be seen almost only late, and the early
        alerts are the ones that matter for follow-up. ``"mixed"``: each curve
        draws "log" or "uniform" with equal odds, so late cuts (typing a whole
        curve) are seen about as often as under "uniform" and the first
        detections still half as often as under "log". k is then clipped to
        ``min_detections..D``.

    Returns
    -------
    (B,) int64 array, k in 1..D (0 where D = 0).
    """
    if scheme not in PREFIX_SCHEMES:
        raise ValueError(f"scheme={scheme!r}: expected one of {PREFIX_SCHEMES}")
    d = np.asarray(n_detections, dtype=np.int64)  # (B,)
    low = np.minimum(min_detections, d)  # (B,)

    def uniform() -> np.ndarray:
        return low + np.floor(rng.random(len(d)) * (d - low + 1)).astype(np.int64)

    def log_k() -> np.ndarray:
        return np.floor(np.exp(rng.random(len(d)) * np.log(d + 1.0))).astype(np.int64)

    # "uniform" and "log" draw one number per curve, as they always did, so a seeded recipe keeps its prefixes
    if scheme == "mixed":
        k = np.where(rng.random(len(d)) < 0.5, uniform(), log_k())
    else:
        k = uniform() if scheme == "uniform" else log_k()
    return np.clip(k, low, d)  # (B,)


def random_prefixes(curves: Sequence[LightCurve], rng: np.random.Generator, min_detections: int = 1,
                    scheme: str = "uniform") -> list[LightCurve]:
    """Cut each curve at a random detection, for training augmentation.

    The number of detections kept, k, is drawn per curve by
    `draw_cut_detections` (by default uniformly among the curve's
    detections, at least ``min_detections`` of them); the prefix is
    ``first_n_detections(curve, k)``. A curve without detections is returned
    whole. The counting and drawing are vectorised; the slicing is one cheap
    view per curve.

    Parameters
    ----------
    curves : sequence of LightCurve, length B
    rng : numpy.random.Generator
    min_detections : int
        Shortest prefix, in detections (>= 1).
    scheme : {"uniform", "log"}
        How k is drawn, see `draw_cut_detections`.

    Returns
    -------
    list of LightCurve, length B

    Examples
    --------
    >>> lc = LightCurve.from_arrays([1, 2, 3], [60000.0, 60001.0, 60002.0], [2, 2, 2],
    ...                             [500.0, 20.0, 900.0], [100.0] * 3, [True, False, True])
    >>> cut = random_prefixes([lc] * 50, np.random.default_rng(0))
    >>> sorted({len(c) for c in cut})
    [1, 3]
    """
    if min_detections < 1:
        raise ValueError(f"random_prefixes: min_detections={min_detections}, must be >= 1")
    n_det = np.fromiter((int(c.is_detection.sum()) for c in curves), dtype=np.int64, count=len(curves))
    k = draw_cut_detections(n_det, rng, min_detections, scheme)  # (B,)
    out = []
    for curve, kb in zip(curves, k.tolist()):
        if kb == 0:
            out.append(curve)
        else:
            det_cum = np.cumsum(curve.is_detection)  # (N,) detections up to each point
            out.append(_head(curve, int(np.searchsorted(det_cum, kb)) + 1))
    return out


def rescale(curve: LightCurve, factor: float) -> LightCurve:
    """The curve with flux and error multiplied by ``factor`` (> 0): the same object seen brighter or fainter.

    `models.encode.encode` is invariant to this except for its ``scale`` feature
    (log10 of the median error).
    """
    return LightCurve(curve.source_id, curve.mjd_tai, curve.band, (curve.flux_njy * factor).astype(np.float32),
                      (curve.flux_err_njy * factor).astype(np.float32), curve.is_detection)


def _cut(curves, rng, min_detections, scheme, drop_nondetections_prob, scale_jitter_dex=0.0) -> list[LightCurve]:
    cut = random_prefixes(curves, rng, min_detections, scheme)
    if drop_nondetections_prob > 0:
        drop = rng.random(len(cut)) < drop_nondetections_prob  # (B,)
        cut = [detections_only(c) if d and c.is_detection.any() else c for c, d in zip(cut, drop.tolist())]
    if scale_jitter_dex > 0:
        factor = 10.0 ** rng.uniform(-scale_jitter_dex, scale_jitter_dex, len(cut))  # (B,)
        cut = [rescale(c, f) for c, f in zip(cut, factor.tolist())]
    return cut


def prefix_batch(curves: Sequence[LightCurve], rng: np.random.Generator, max_visits: int, *,
                 min_detections: int = 1, scheme: str = "uniform", drop_nondetections_prob: float = 0.0,
                 scale_jitter_dex: float = 0.0, contexts: np.ndarray | None = None) -> Batch:
    """Encode random prefixes of ``curves``: the training path from curves to a `Batch`.

    Each curve is cut by `random_prefixes`; then, with probability
    ``drop_nondetections_prob`` per curve, its forced photometry and upper
    limits are dropped (`detections_only`), so the model also knows curves
    that carry detections only (the ZTF BTS data, young Rubin alerts without
    forced photometry). With ``scale_jitter_dex`` > 0, each curve's flux and
    error are multiplied by ``10**u``, u uniform in +-``scale_jitter_dex``
    (`rescale`): the simulated ZTF errors of supernovae are ~2.5x smaller than
    the real BTS ones at the same signal-to-noise, and without the jitter the
    error scale alone sent real supernovae to the eclipsing-binary class. The
    result goes through `models.encode.encode`, the one encoder of training
    and serving, with the curves' (B, N_CONTEXT) ``contexts`` (None: unknown).

    Returns
    -------
    Batch
        ``features`` (B, L, F), ``dt_days`` (B, L), ``mask`` (B, L), rows in the order of ``curves``.
    """
    return encode(_cut(curves, rng, min_detections, scheme, drop_nondetections_prob, scale_jitter_dex), max_visits,
                  contexts=contexts)


def prefix_batches(curves: Sequence[LightCurve], rng: np.random.Generator, max_visits: int, *, n_chunks: int = 1,
                   min_detections: int = 1, scheme: str = "uniform", drop_nondetections_prob: float = 0.0,
                   scale_jitter_dex: float = 0.0, contexts: np.ndarray | None = None,
                   drop_context_prob: float = 0.0) -> tuple[list[Batch], np.ndarray]:
    """`prefix_batch`, split into ``n_chunks`` batches of similar window length.

    With ``drop_context_prob`` > 0 each curve loses its whole context with that probability, so
    the model also knows curves whose packets say nothing (the Python API's light curves, a
    survey whose context the decoder does not read) and does not lean on the context alone.

    A batch is padded to its longest window, and random prefixes are mostly
    short: one 64-token curve among 128 short ones makes ~70 % of the tokens
    padding. Sorting the prefixes by window length and encoding them in
    ``n_chunks`` groups cuts the tokens computed about in half for 4 chunks
    (the model's output does not depend on padding, so this changes only the
    cost). The caller forwards each chunk and concatenates the outputs.

    Returns
    -------
    batches : list of Batch
        At most ``n_chunks``, together B rows.
    order : (B,) int64 ndarray
        Row r of the concatenated batches is ``curves[order[r]]`` (permute targets with it).
    """
    cut = _cut(curves, rng, min_detections, scheme, drop_nondetections_prob, scale_jitter_dex)
    if contexts is not None and drop_context_prob > 0:
        unknown = rng.random(len(cut)) < drop_context_prob  # (B,) curves shown without their context
        contexts = np.where(unknown[:, None], np.nan, contexts)
    lengths = np.minimum(np.fromiter((len(c) for c in cut), dtype=np.int64, count=len(cut)), max_visits)
    order = np.argsort(lengths, kind="stable")  # (B,)
    chunks = [part for part in np.array_split(order, max(1, min(n_chunks, len(order)))) if len(part)]
    return [encode([cut[i] for i in part], max_visits, contexts=None if contexts is None else contexts[part])
            for part in chunks], order


def fixed_prefix_batches(curves: Sequence[LightCurve], seed: int, max_visits: int, *, batch_size: int = 512,
                         draws: int = 1, scheme: str = "uniform", drop_nondetections_prob: float = 0.0,
                         contexts: np.ndarray | None = None) -> tuple[list[Batch], np.ndarray]:
    """Random prefixes drawn once with a fixed seed, encoded in batches: a stable evaluation set.

    Rows are sorted by window length before batching (less padding, same outputs).

    Parameters
    ----------
    curves : sequence of LightCurve, length N
    seed : int
        Seed of the cuts, so every evaluation sees the same prefixes.
    max_visits : int
    batch_size : int
    draws : int
        Prefixes per curve (more draws, less noise on small sets).
    scheme, drop_nondetections_prob, contexts
        As for `prefix_batch`.

    Returns
    -------
    batches : list of Batch
        Together ``draws * N`` rows.
    curve_index : (draws * N,) int64 ndarray
        The curve each row (of the concatenated batches) came from.
    """
    rng = np.random.default_rng(seed)
    index = np.tile(np.arange(len(curves)), draws)  # (draws N,)
    cut = _cut([curves[i] for i in index], rng, 1, scheme, drop_nondetections_prob)
    lengths = np.minimum(np.fromiter((len(c) for c in cut), dtype=np.int64, count=len(cut)), max_visits)
    order = np.argsort(lengths, kind="stable")
    batches = [encode([cut[i] for i in order[s:s + batch_size]], max_visits,
                      contexts=None if contexts is None else contexts[index[order[s:s + batch_size]]])
               for s in range(0, len(order), batch_size)]
    return batches, index[order]

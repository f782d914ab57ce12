"""`encode`: the one way photometry becomes model input, for training and serving alike.

One token per photometric point (detection, forced photometry or upper limit),
at most ``max_visits`` points of each curve (the window, see `window_indices`),
**left-aligned**: real tokens fill positions ``0..n-1`` in time order, padding
follows, up to the longest window in the batch (so L <= ``max_visits``: a batch
of young objects costs a fraction of a full one; the model's output does not
depend on padding).

The window keeps the event, not the most recent points: a Rubin alert carries up
to a year of forced photometry, and the last ``max_visits`` points of an old
supernova are flat noise long after it faded. So a curve with more points than
``max_visits`` keeps

- every detection, or ``max_visits`` of them evenly spaced in rank (first and
  last included) when there are more;
- then, in the slots left, the non-detections nearest in time to a detection
  (the pre-explosion baseline and the decline beyond the last detection);
- and, with no detection at all, its most recent points.

Per token:

========  =====================================================================
index     feature
========  =====================================================================
0 flux    ``asinh(flux_njy / scale)``
1 err     ``asinh(flux_err_njy / scale)``
2 det     1.0 for a detection, 0.0 for forced photometry / an upper limit
3 wl      ``(wavelength_nm - 650) / 300``, the band's effective wavelength, so
          ZTF g/r/i and LSST ugrizy share one input (no per-band embedding)
4 scale   ``log10(scale / 1 nJy) - 3``, the same on every token of a curve, so
          absolute brightness survives the scaling
========  =====================================================================

``scale`` is the median ``flux_err_njy`` of the curve's window (always > 0):
``asinh(flux/scale)`` is close to the signal-to-noise ratio for faint points
and logarithmic for bright ones, and multiplying a curve's fluxes and errors by
a constant changes only feature 4.

Time travels separately as ``dt_days`` (float32): days since the first
detection in the window (since the first point, if the window holds no
detection), negative for earlier forced photometry. Absolute MJD stays float64
until this subtraction; float32 then resolves ~10 ms at dt ~ 1 d and ~5 s at
dt ~ 1000 d, plenty for visit pairs 30 minutes apart. The continuous
(sinusoidal) time encoding is done by the model (`models.model.TimeEncoding`),
which keeps the batch small and puts the periods in the checkpoint.

**Alert context** (`models.context`) travels as its own per-curve vector,
``context`` (B, `N_CONTEXT_FEATURES`) with ``context_mask`` (True = known), which the
model turns into one extra token. Missing and absurd values (`models.context.valid_context`)
are masked and set to 0; a batch without contexts is all masked.

========  ======================================  =====================================
index     feature                                 from context field
========  ======================================  =====================================
0         ``2 rb - 1``                            ``real_bogus``
1         ``2 s - 1``                             ``star_score``
2         ``log10(1 + min(d, 100)) / 2``          ``star_distance_arcsec`` (inf -> 1.0)
3         ``log10(1 + days) / 3``: days the       ``first_detection_mjd_tai``, against the
          source was detected before the          window's first detection (``dt_days`` = 0);
          window's first detection                0 days when it is later
4         ``log10(1 + min(d, 100)) / 2``          ``ss_distance_arcsec``
5         ``log10(1 + min(d, 100)) / 2``          ``gaia_distance_arcsec``
6         ``log10(1 + min(d, 100)) / 2``          ``ref_distance_arcsec``
7         ``(m - 18) / 4``                        ``ref_mag_ab``
========  ======================================  =====================================

``n_detections_history`` is not a model input: the simulated training curves are cut at
random detections, and a count fixed at the full curve would not match the cut.

Change any of this and bump `ENCODING_VERSION`: checkpoints record it and
refuse to load under another.
"""
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models.bands import BAND_WAVELENGTH_NM
from models.context import CONTEXT_INDEX, N_CONTEXT, valid_context
from models.lightcurve import LightCurve
from models.lightcurves import LightCurves

ENCODING_VERSION = "tokens-asinh-mederr-wavelength-eventwindow-context-3"
MAX_VISITS = 64  # default window L; the checkpoint's ModelConfig.max_visits is what serving uses
FEATURE_NAMES: tuple[str, ...] = ("flux", "err", "det", "wl", "scale")
N_FEATURES = len(FEATURE_NAMES)
FLUX_FEATURE = FEATURE_NAMES.index("flux")  # the target of masked-flux pretraining

_WAVELENGTH_CENTER_NM = 650.0
_WAVELENGTH_SPAN_NM = 300.0
_LOG10_SCALE_CENTER = 3.0  # 1000 nJy: between typical LSST (~100 nJy) and ZTF (~5000 nJy) errors
# Model context features: (name, context field); see the module docstring for the transforms.
CONTEXT_FEATURES: tuple[tuple[str, str], ...] = (
    ("real_bogus", "real_bogus"), ("star_score", "star_score"), ("star_distance", "star_distance_arcsec"),
    ("prior_history", "first_detection_mjd_tai"), ("ss_distance", "ss_distance_arcsec"),
    ("gaia_distance", "gaia_distance_arcsec"), ("ref_distance", "ref_distance_arcsec"), ("ref_mag", "ref_mag_ab"),
)
N_CONTEXT_FEATURES = len(CONTEXT_FEATURES)
_CONTEXT_COLUMNS = np.array([CONTEXT_INDEX[field] for _, field in CONTEXT_FEATURES])
_DISTANCE_CAP_ARCSEC = 100.0


@dataclass(frozen=True)
class Batch:
    """Encoded light curves, padded to a common length L.

    Attributes
    ----------
    features : (B, L, F) float32 tensor
        Per-token features, see the module docstring; zeros at padding.
    dt_days : (B, L) float32 tensor
        Days since the first detection in the window; zero at padding.
    mask : (B, L) bool tensor
        True for a real token, False for padding. Real tokens come first.
    context : (B, N_CONTEXT_FEATURES) float32 tensor
        The alert context features (module docstring); 0 where masked.
    context_mask : (B, N_CONTEXT_FEATURES) bool tensor
        True where the context feature is known.
    """

    features: torch.Tensor
    dt_days: torch.Tensor
    mask: torch.Tensor
    context: torch.Tensor
    context_mask: torch.Tensor

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def n_visits(self) -> torch.Tensor:
        """(B,) int64: number of real tokens (points used) per curve."""
        return self.mask.sum(dim=1)

    def to(self, device, non_blocking: bool = False) -> "Batch":
        """Move every tensor to ``device``."""
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self.as_tuple()))

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        """``(features, dt_days, mask, context, context_mask)``."""
        return self.features, self.dt_days, self.mask, self.context, self.context_mask

    def pin_memory(self) -> "Batch":
        """Page-locked copy; `torch.utils.data.DataLoader(pin_memory=True)` calls this."""
        return Batch(*(t.pin_memory() for t in self.as_tuple()))

    def padded(self, length: int) -> "Batch":
        """The batch with masked padding tokens appended up to `length` (>= L) tokens per curve.

        The model masks padding out of attention keys and of the pooling, so its probabilities
        do not change (beyond rounding); only the shapes do.
        """
        extra = length - self.mask.shape[1]
        if extra < 0:
            raise ValueError(f"padded: length {length} is shorter than the batch's {self.mask.shape[1]} tokens")
        if extra == 0:
            return self
        return Batch(F.pad(self.features, (0, 0, 0, extra)), F.pad(self.dt_days, (0, extra)),
                     F.pad(self.mask, (0, extra), value=False), self.context, self.context_mask)


def encode(curves: Sequence[LightCurve], max_visits: int = MAX_VISITS, now_mjd_tai=None,
           contexts: np.ndarray | None = None) -> Batch:
    """`encode_curves` of a list of `LightCurve`s (their columns concatenated once).

    Examples
    --------
    >>> lc = LightCurve.from_arrays([1, 2], [60000.0, 60000.5], [2, 1],
    ...                             [500.0, -20.0], [100.0, 100.0], [True, False])
    >>> one = LightCurve.from_arrays([7], [60001.0], [2], [80.0], [100.0], [True])
    >>> b = encode([lc, one], max_visits=4)
    >>> tuple(b.features.shape), b.mask.tolist(), b.dt_days.tolist()
    ((2, 2, 5), [[True, True], [True, False]], [[0.0, 0.5], [0.0, 0.0]])
    """
    return encode_curves(LightCurves.from_list(list(curves)), max_visits, now_mjd_tai, contexts)


def encode_curves(curves: LightCurves, max_visits: int = MAX_VISITS, now_mjd_tai=None,
                  contexts: np.ndarray | None = None) -> Batch:
    """Encode light curves into one padded batch of tokens.

    Parameters
    ----------
    curves : LightCurves, B curves
        Time-sorted photometry (flux in nJy, time in MJD TAI), each curve as
        `LightCurve.from_arrays` validates it. None may be empty.
    max_visits : int
        Window length: each curve keeps at most ``max_visits`` points (`window_indices`).
        The output is padded to L = the longest kept window, at most ``max_visits``.
    now_mjd_tai : float or (B,) array-like of float, optional
        Encode each curve as it was known at this time (MJD TAI): points
        later than it are dropped before windowing. None keeps every point,
        which is what serving does.
    contexts : (B, N_CONTEXT) float64 array, optional
        Each curve's alert context (`models.context`), NaN where unknown; None: all unknown.

    Returns
    -------
    Batch
        ``features`` (B, L, F), ``dt_days`` (B, L), ``mask`` (B, L), ``context`` and
        ``context_mask`` (B, N_CONTEXT_FEATURES).

    Raises
    ------
    ValueError
        For an empty batch, ``max_visits < 1``, or a curve that is empty (or
        has no point at or before ``now_mjd_tai``); the message gives its index.

    Examples
    --------
    >>> one = LightCurve.from_arrays([7], [60001.0], [2], [80.0], [100.0], [True])
    >>> encode_curves(LightCurves.from_list([one, one]), max_visits=4).mask.tolist()
    [[True], [True]]
    """
    n_curves = len(curves)
    if n_curves == 0:
        raise ValueError("encode: no light curves")
    if max_visits < 1:
        raise ValueError(f"encode: max_visits={max_visits}, must be >= 1")
    lengths = curves.lengths  # (B,)
    if np.any(lengths == 0):
        raise ValueError(f"encode: light curve {int(np.argmax(lengths == 0))} of the batch is empty")

    mjd = curves.mjd_tai  # (N,) float64, N = total points
    offsets = curves.offsets[:-1]  # (B,) first point of each curve in the flat arrays
    ends = offsets + lengths  # (B,) one past the last point
    if now_mjd_tai is not None:
        now = np.broadcast_to(np.asarray(now_mjd_tai, dtype=np.float64), (n_curves,))  # (B,)
        seen = (mjd <= np.repeat(now, lengths)).astype(np.int64)  # (N,) a prefix of each sorted curve
        counts = np.add.reduceat(seen, offsets)  # (B,)
        if np.any(counts == 0):
            raise ValueError(
                f"encode: light curve {int(np.argmax(counts == 0))} of the batch has no point "
                "at or before now_mjd_tai")
        ends = offsets + counts
    det = curves.is_detection  # (N,) bool
    src, n_tokens = window_indices(mjd, det, offsets, ends - offsets, max_visits)  # (T,), (B,)
    width = int(n_tokens.max())  # L

    # Token j of curve b is point src[first_token[b] + j].
    first_token = np.cumsum(n_tokens) - n_tokens  # (B,) position of each curve's first kept token
    row = np.repeat(np.arange(n_curves), n_tokens)  # (T,) T = total kept tokens
    col = np.arange(row.size) - np.repeat(first_token, n_tokens)  # (T,)

    mjd = mjd[src]  # (T,) float64
    det = det[src]  # (T,) bool
    band = curves.band[src]  # (T,) int8
    flux = curves.flux_njy[src].astype(np.float64)  # (T,)
    err = curves.flux_err_njy[src].astype(np.float64)  # (T,)

    # Reference time: first detection in the window, else its first point (curves are time-sorted).
    t_ref = np.minimum.reduceat(np.where(det, mjd, np.inf), first_token)  # (B,)
    t_ref = np.where(np.isfinite(t_ref), t_ref, mjd[first_token])  # (B,)
    dt_days = (mjd - np.repeat(t_ref, n_tokens)).astype(np.float32)  # (T,)

    # Flux scale: median error of the window (sort errors within each curve, take the middle).
    err_sorted = err[np.lexsort((err, row))]  # (T,) grouped by curve, ascending within
    scale = 0.5 * (err_sorted[first_token + (n_tokens - 1) // 2] + err_sorted[first_token + n_tokens // 2])  # (B,)
    scale_tok = np.repeat(scale, n_tokens)  # (T,)

    tokens = np.stack([
        np.arcsinh(flux / scale_tok),
        np.arcsinh(err / scale_tok),
        det.astype(np.float64),
        (BAND_WAVELENGTH_NM[band].astype(np.float64) - _WAVELENGTH_CENTER_NM) / _WAVELENGTH_SPAN_NM,
        np.log10(scale_tok) - _LOG10_SCALE_CENTER,
    ], axis=1).astype(np.float32)  # (T, F)

    features = np.zeros((n_curves, width, N_FEATURES), dtype=np.float32)  # (B, L, F)
    features[row, col] = tokens
    dt = np.zeros((n_curves, width), dtype=np.float32)  # (B, L)
    dt[row, col] = dt_days
    mask = np.zeros((n_curves, width), dtype=np.bool_)  # (B, L)
    mask[row, col] = True
    context, context_mask = context_features(contexts, t_ref, n_curves)
    return Batch(torch.from_numpy(features), torch.from_numpy(dt), torch.from_numpy(mask),
                 torch.from_numpy(context), torch.from_numpy(context_mask))


def context_features(contexts: np.ndarray | None, t_ref_mjd_tai: np.ndarray,
                     n_curves: int) -> tuple[np.ndarray, np.ndarray]:
    """``(context, context_mask)``, (B, N_CONTEXT_FEATURES) float32 and bool, of (B, N_CONTEXT) contexts.

    `t_ref_mjd_tai` (B,) is each window's reference time (its first detection), against which
    the first detection ever becomes days of earlier history.
    """
    if contexts is None:
        return (np.zeros((n_curves, N_CONTEXT_FEATURES), dtype=np.float32),
                np.zeros((n_curves, N_CONTEXT_FEATURES), dtype=np.bool_))
    contexts = np.asarray(contexts, dtype=np.float64)
    if contexts.shape != (n_curves, N_CONTEXT):
        raise ValueError(f"encode: contexts of shape {contexts.shape}, expected ({n_curves}, {N_CONTEXT})")
    usable, _ = valid_context(contexts)
    raw = np.where(usable, contexts, 0.0)[:, _CONTEXT_COLUMNS]  # (B, K) in CONTEXT_FEATURES order
    known = usable[:, _CONTEXT_COLUMNS]  # (B, K)
    distance = np.log10(1.0 + np.minimum(raw, _DISTANCE_CAP_ARCSEC)) / 2.0  # (B, K), used for the distances
    history_days = np.maximum(t_ref_mjd_tai - raw[:, 3], 0.0)  # (B,)
    features = np.stack([
        2.0 * raw[:, 0] - 1.0,
        2.0 * raw[:, 1] - 1.0,
        distance[:, 2],
        np.log10(1.0 + history_days) / 3.0,
        distance[:, 4],
        distance[:, 5],
        distance[:, 6],
        (raw[:, 7] - 18.0) / 4.0,
    ], axis=1)
    return np.where(known, features, 0.0).astype(np.float32), known


def window_indices(mjd_tai: np.ndarray, is_detection: np.ndarray, offsets: np.ndarray, counts: np.ndarray,
                   max_visits: int) -> tuple[np.ndarray, np.ndarray]:
    """Which points of each curve the model sees: the event window of the module docstring.

    Parameters
    ----------
    mjd_tai : (N,) float64
        Times of all curves' points, concatenated; each curve sorted in time.
    is_detection : (N,) bool
    offsets, counts : (B,) int64
        Curve b uses points ``offsets[b] .. offsets[b] + counts[b] - 1`` (counts >= 1);
        later points of it are ignored.
    max_visits : int
        At most this many points per curve.

    Returns
    -------
    src : (T,) int64
        Flat indices of the kept points, curve by curve, in time order within a curve.
    n_kept : (B,) int64
        ``min(counts, max_visits)``: points kept per curve.

    Examples
    --------
    >>> t = np.arange(8.0)
    >>> det = np.array([0, 0, 0, 1, 1, 0, 0, 0], bool)
    >>> src, n = window_indices(t, det, np.array([0]), np.array([8]), 4)
    >>> src.tolist(), n.tolist()
    ([2, 3, 4, 5], [4])
    """
    n_kept = np.minimum(counts, max_visits)  # (B,)
    if np.all(counts <= max_visits):  # nothing to choose: every point, in place
        first = np.cumsum(n_kept) - n_kept
        return np.repeat(offsets - first, n_kept) + np.arange(int(n_kept.sum())), n_kept
    curve = np.repeat(np.arange(counts.size), counts)  # (M,) M = points in use
    first_in_use = np.repeat(np.cumsum(counts) - counts, counts)  # (M,)
    point = np.arange(counts.sum()) - first_in_use + np.repeat(offsets, counts)  # (M,) flat index
    t, det = mjd_tai[point], is_detection[point]  # (M,)

    n_det = np.bincount(curve, weights=det, minlength=counts.size).astype(np.int64)  # (B,)
    det_rank = np.cumsum(det) - 1 - np.repeat(np.cumsum(n_det) - n_det, counts)  # (M,) rank among the curve's detections
    # Evenly spaced detections when there are more than max_visits: ranks round(j * step), j = 0..max_visits-1.
    if max_visits == 1:
        spaced = det_rank == n_det[curve] - 1  # the last detection
    else:
        step = np.where(n_det > max_visits, (n_det - 1) / (max_visits - 1), 1.0)[curve]  # (M,) >= 1
        j_low = np.floor(det_rank / step)
        spaced = (np.rint(j_low * step) == det_rank) | (np.rint((j_low + 1) * step) == det_rank)
    keep_det = det & ((n_det[curve] <= max_visits) | spaced)

    # Non-detections by distance to the nearest detection of the same curve; curves are shifted
    # far apart in time so a running max/min never reaches into a neighbour.
    shifted = t + curve * 1e6  # (M,) days; curves' spans are far below 1e6 d
    prev_det = np.maximum.accumulate(np.where(det, shifted, -np.inf))
    next_det = np.minimum.accumulate(np.where(det, shifted, np.inf)[::-1])[::-1]
    gap_days = np.minimum(shifted - prev_det, next_det - shifted)  # (M,) inf-free where the curve has a detection
    recency_days = (t[np.cumsum(counts) - 1])[curve] - t  # (M,) for curves without any detection
    key = np.where(n_det[curve] > 0, gap_days, recency_days)  # (M,) smaller is kept first
    key = np.where(det, np.where(keep_det, -1.0, np.inf), key)

    order = np.lexsort((key, curve))  # (M,) grouped by curve, best first
    chosen = order[np.arange(order.size) - first_in_use < np.repeat(n_kept, counts)]  # (T,) positions in the in-use arrays
    return np.sort(point[chosen]), n_kept

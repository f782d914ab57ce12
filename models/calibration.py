"""Temperature scaling (Guo et al. 2017) and the expected calibration error.

The scorer's outputs are read as likelihoods, so after training the logits are
divided by one scalar temperature T fitted on held-out data:
``p = softmax(logits / T)``. T changes confidence, never the ranking or the
argmax. `AlertTransformer.set_temperature` stores T in the model, and
`AlertTransformer.predict_proba` applies it.

Pure torch; inputs may be tensors or array-likes.
"""
import math

import torch
import torch.nn.functional as F

# Search range of the temperature: beyond it the model is either useless or
# a step function, and a fit landing on a bound says so (see `fit_temperature`).
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...


def _as_float64(x) -> torch.Tensor:
    return torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)


def temperature_nll(logits, targets, temperature: float) -> float:
    """Mean negative log-likelihood (nats) of ``targets`` under ``softmax(logits / temperature)``.

    Parameters
    ----------
    logits : (N, C) tensor or array-like
    targets : (N,) int tensor or array-like, class indices
    temperature : float, > 0

    >>> round(temperature_nll([[0.0, 0.0]], [1], 1.0), 4)  # log 2
    0.6931
    """
    logits, targets = _as_float64(logits), torch.as_tensor(targets).long().cpu()
    return float(F.cross_entropy(logits / temperature, targets))


def fit_temperature(logits, targets, *, tol: float = 1e-4, max_iter: int = 100) -> float:
    """The temperature minimising the NLL of ``targets`` on held-out ``logits``.

    The NLL is convex in 1/T, hence unimodal in log T, so a golden-section
    search on log T over [`MIN_TEMPERATURE`, `MAX_TEMPERATURE`] finds the
    minimum without gradients or tuning; it stops when the bracket is narrower
    than ``tol`` in log T (relative precision ~``tol``). A result on a bound means
    the optimum lies beyond it.

    Parameters
    ----------
    logits : (N, C) tensor or array-like
        Uncalibrated logits of a validation set (never the test set).
    targets : (N,) int tensor or array-like
        True class indices.
    tol : float
        Bracket width in log T at which to stop.
    max_iter : int
        Iteration cap (100 shrinks the bracket by 0.618^100).

    Returns
    -------
    float
        T > 0; ``softmax(logits / T)`` are the calibrated probabilities.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> true = torch.randn(4000, 5, generator=g) * 3          # logits of a calibrated model
    >>> y = torch.multinomial(true.softmax(-1), 1, generator=g).squeeze(1)
    >>> round(fit_temperature(true * 2.0, y), 1)             # overconfident by 2x
    2.0
    """
    logits, targets = _as_float64(logits), torch.as_tensor(targets).long().cpu()
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"fit_temperature: logits {tuple(logits.shape)} and targets {tuple(targets.shape)} "
                         "need shapes (N, C) and (N,)")
    if len(targets) == 0:
        raise ValueError("fit_temperature: no samples")

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits / math.exp(log_t), targets))

    lo, hi = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(max_iter):
        if hi - lo < tol:
            break
        if fa <= fb:  # the minimum lies in [lo, b]
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = nll(a)
        else:  # in [a, hi]
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = nll(b)
    return math.exp(0.5 * (lo + hi))


def expected_calibration_error(probs, targets, n_bins: int = 15) -> float:
    """Top-label expected calibration error.

    Samples are binned by confidence (the top probability) into ``n_bins``
    equal-width bins of (0, 1]; ECE is the sample-weighted mean of
    ``|accuracy - mean confidence|`` over the bins.

    Parameters
    ----------
    probs : (N, C) tensor or array-like
        Class probabilities, rows summing to 1.
    targets : (N,) int tensor or array-like
        True class indices.
    n_bins : int

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    Two samples at confidence 0.9 (one right) and two at 0.6 (both right):
    |0.5 - 0.9| * 2/4 + |1.0 - 0.6| * 2/4 = 0.4.

    >>> p = [[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]]
    >>> round(expected_calibration_error(p, [0, 1, 1, 1], n_bins=10), 6)
    0.4
    """
    probs, targets = _as_float64(probs), torch.as_tensor(targets).long().cpu()
    if len(targets) == 0:
        raise ValueError("expected_calibration_error: no samples")
    confidence, predicted = probs.max(dim=1)  # (N,), (N,)
    correct = (predicted == targets).double()  # (N,)
    # Bin b holds confidences in (b/n, (b+1)/n]; a confidence of exactly 0 cannot occur for a distribution.
    bins = (torch.ceil(confidence * n_bins).long() - 1).clamp(0, n_bins - 1)  # (N,)
    count = torch.bincount(bins, minlength=n_bins).double()  # (n_bins,)
    sum_conf = torch.bincount(bins, weights=confidence, minlength=n_bins)  # (n_bins,)
    sum_correct = torch.bincount(bins, weights=correct, minlength=n_bins)  # (n_bins,)
    return float((sum_correct - sum_conf).abs().sum() / len(targets))

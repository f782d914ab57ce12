"""Temperature scaling (Guo et al. 2017); its figure of merit, the ECE, is `training.metrics.expected_calibration_error`.

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

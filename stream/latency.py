"""Latency percentiles over any number of alerts in fixed memory: counts in log-spaced bins.

A scorer's lifetime holds billions of latencies, and its last minute may hold a million; a
histogram of each batch can be added to a total and added to, then subtracted from, a
sliding window, and percentiles read from either cost one pass over `N_BINS` counts. A
percentile is the geometric middle of its bin, within about 3 % of the exact value
(`BINS_PER_DECADE` bins per factor 10) for latencies from `LOW_MS` to `HIGH_MS`; latencies
outside fall in the first or last bin.
"""
import numpy as np

LOW_MS, HIGH_MS = 1.0, 1e7  # 1 ms .. 2.8 hours
BINS_PER_DECADE = 40
EDGES_MS = np.logspace(np.log10(LOW_MS), np.log10(HIGH_MS),
                       int(round(np.log10(HIGH_MS / LOW_MS) * BINS_PER_DECADE)) + 1)
N_BINS = len(EDGES_MS) - 1
_MIDDLES_MS = np.sqrt(EDGES_MS[:-1] * EDGES_MS[1:])


def histogram(latencies_ms: np.ndarray) -> np.ndarray:
    """(N_BINS,) int64 counts of `latencies_ms` (any shape)."""
    clipped = np.clip(np.asarray(latencies_ms, dtype=np.float64).ravel(), LOW_MS, HIGH_MS * (1 - 1e-12))
    return np.bincount(np.searchsorted(EDGES_MS, clipped, side="right") - 1, minlength=N_BINS).astype(np.int64)


def percentiles(counts: np.ndarray, qs: tuple[float, ...] = (50, 95, 99)) -> list[float] | None:
    """The `qs` percentiles (ms) of a histogram; None if it is empty.

    >>> p50, p99 = percentiles(histogram(np.arange(1, 1001)), (50, 99))  # exact: 500.5, 990.0
    >>> bool(abs(p50 / 500.5 - 1) < 0.03 and abs(p99 / 990 - 1) < 0.03)
    True
    """
    total = int(counts.sum())
    if total == 0:
        return None
    cumulative = np.cumsum(counts)
    return [float(_MIDDLES_MS[np.searchsorted(cumulative, q / 100 * total)]) for q in qs]

"""Alert context for simulated curves, drawn from the real packets' contexts of the same kind of source.

The simulator makes light curves only. What a packet says beside them (real/bogus, the
nearest catalogued star, the detection history, known asteroids nearby) is drawn here,
per simulated class, from the contexts of real ZTF packets of the matching kind
(`CONTEXT_SOURCES`): the train part of ``data/labeled/ztf_packets`` only, so the
evaluation's test part stays unseen. The detection history is then set against the
simulated curve: a transient was first detected at its curve's first detection; AGN and
variable stars had been detected for `LONG_HISTORY_DAYS` before the simulated window.

Simulated Rubin curves get what the model is shown of a Rubin alert's context
(`models.context.model_context`: whether the source is a known solar-system object, nothing
else), so training sees the context serving shows it.
"""
from functools import lru_cache

import numpy as np

from models.context import CONTEXT_INDEX, N_CONTEXT, model_context
from models.taxonomy import SOLAR_SYSTEM_ID
from stream.decode.rubin import rubin_context
from training.real_packets import packet_windows, ztf_packets

# Simulated class (ELAsTiCC2 id) -> real labels whose contexts it draws from.
_TRANSIENT_LABELS = ("SN Ia", "SN II", "SN Ib/c", "SLSN", "SN (untyped)", "TDE")
_STELLAR_LABELS = ("star", "variable star", "YSO", "CV")
CONTEXT_SOURCES: dict[int, tuple[str, ...]] = {
    2222: _TRANSIENT_LABELS, 2223: _TRANSIENT_LABELS, 2224: _TRANSIENT_LABELS, 2242: _TRANSIENT_LABELS,
    2243: _TRANSIENT_LABELS, 2232: _TRANSIENT_LABELS,
    2332: ("QSO/AGN",),
    2233: _STELLAR_LABELS, 2234: ("CV",) + _STELLAR_LABELS, 2323: _STELLAR_LABELS, 2325: _STELLAR_LABELS,
    SOLAR_SYSTEM_ID: ("asteroid",),
}
LONG_LIVED = (2332, 2234, 2323, 2325)  # detected long before any 30-day window
LONG_HISTORY_DAYS = (30.0, 1500.0)  # uniform: how long before the window a long-lived source was first detected
FLARE_ID = 2233
DISTANCE_JITTER_DEX = 0.1
REF_MAG_JITTER = 0.3
_FIRST_DETECTION = CONTEXT_INDEX["first_detection_mjd_tai"]
_N_HISTORY = CONTEXT_INDEX["n_detections_history"]


@lru_cache(maxsize=1)
def real_context_pools() -> dict[int, np.ndarray]:
    """Per simulated class id, the (M, N_CONTEXT) contexts of the real train packets it draws from."""
    windows = packet_windows(ztf_packets("train"))
    labels = np.asarray(windows.labels, dtype=object)
    return {cid: windows.contexts[np.isin(labels, sources)] for cid, sources in CONTEXT_SOURCES.items()}


def draw_contexts(class_ids: np.ndarray, first_detection_mjd_tai: np.ndarray, survey: str,
                  rng: np.random.Generator) -> np.ndarray:
    """(N, N_CONTEXT) contexts for simulated curves of `class_ids` whose first detection is given (MJD TAI; NaN: none).

    ZTF: a real context of the class's kind, its history set against the simulated curve (module docstring).
    LSST: what the model is shown of a Rubin alert's context (`models.context.model_context`).
    """
    n = len(class_ids)
    if survey == "lsst":  # a simulated asteroid is a known one: Rubin keys it by its ssObjectId
        contexts = np.stack([rubin_context(bool(cid == SOLAR_SYSTEM_ID)) for cid in class_ids]) if n else \
            np.empty((0, N_CONTEXT))
        return model_context(contexts, np.full(n, "rubin"))
    if survey != "ztf":
        raise ValueError(f"survey={survey!r}: expected 'lsst' or 'ztf'")
    pools = real_context_pools()
    contexts = np.empty((n, N_CONTEXT))
    for cid in np.unique(class_ids):
        rows = np.flatnonzero(class_ids == cid)
        pool = pools[int(cid)]
        contexts[rows] = pool[rng.integers(0, len(pool), len(rows))]
    # Jitter, so that a few hundred real contexts do not become a few hundred memorised points.
    distances = [CONTEXT_INDEX[f] for f in ("star_distance_arcsec", "ss_distance_arcsec", "gaia_distance_arcsec",
                                             "ref_distance_arcsec")]
    contexts[:, distances] *= 10.0 ** rng.normal(0.0, DISTANCE_JITTER_DEX, (n, len(distances)))
    contexts[:, CONTEXT_INDEX["ref_mag_ab"]] += rng.normal(0.0, REF_MAG_JITTER, n)
    long_lived = np.isin(class_ids, LONG_LIVED) | ((class_ids == FLARE_ID) & (rng.random(n) < 0.5))
    earlier_days = np.where(long_lived, rng.uniform(*LONG_HISTORY_DAYS, n), 0.0)
    contexts[:, _FIRST_DETECTION] = first_detection_mjd_tai - earlier_days
    contexts[:, _N_HISTORY] = np.nan  # a count of the real source's own history would not match the simulation
    return contexts

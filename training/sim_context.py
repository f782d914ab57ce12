"""Alert context for simulated curves, drawn from the real packets' contexts of the same kind of source.

The simulator makes light curves only. What a packet says beside them (real/bogus, the
nearest catalogued star, the detection history, known asteroids nearby) is drawn here,
per simulated class, from the contexts of real ZTF packets of the matching kind
(`CONTEXT_SOURCES`): the train part of ``data/labeled/ztf_packets`` only, so the
evaluation's test part stays unseen. The detection history is then set against the
simulated curve: a transient was first detected at its curve's first detection; AGN and
variable stars had been detected for `LONG_HISTORY_DAYS` before the simulated window.

Simulated Rubin curves get what a Rubin alert says (`stream.decode.rubin.rubin_context`), drawn
the same way: the reliability from the real ZTF packets' real/bogus scores of the same kind of
source (ZTF's ``drb`` stands in for Rubin's ``diaSource.reliability``, for want of labelled Rubin
alerts), the diaObject's first detection set against the simulated curve as for ZTF but never
before `SURVEY_START_MJD_TAI` (a diaObject's history starts with Rubin's survey), whether the
source is a known solar-system object (one has no diaObject, so no history). Of that, the model
is shown the fields of its table (`models.context.model_context`), so training sees the context
serving shows it.

``n_detections_history`` stays hidden (NaN), for both surveys. A real alert's count (``ndethist``,
Rubin's ``nDiaSources``) is the detections up to that alert, but the training cuts each curve at a
random detection after its one context is drawn (`training.prefixes`), so a count drawn here would
not follow the cut; nor is it a model input (`models.encode.CONTEXT_FEATURES`): making it one needs
a new encoding version, which the shipped checkpoint would refuse.
"""
from functools import lru_cache

import numpy as np

from models.context import CONTEXT_FIELDS, CONTEXT_INDEX, LEGACY_CONTEXT_FIELDS_BY_SURVEY, N_CONTEXT, model_context
from models.taxonomy import SOLAR_SYSTEM_ID
from stream.decode.rubin import rubin_contexts
from training.real_packets import packet_windows, ztf_packets
from training.sim_survey import SURVEY_START_MJD_TAI

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
_REAL_BOGUS = CONTEXT_INDEX["real_bogus"]
_FIRST_DETECTION = CONTEXT_INDEX["first_detection_mjd_tai"]
_N_HISTORY = CONTEXT_INDEX["n_detections_history"]


@lru_cache(maxsize=1)
def real_context_pools() -> dict[int, np.ndarray]:
    """Per simulated class id, the (M, N_CONTEXT) contexts of the real train packets it draws from."""
    windows = packet_windows(ztf_packets("train"))
    labels = np.asarray(windows.labels, dtype=object)
    return {cid: windows.contexts[np.isin(labels, sources)] for cid, sources in CONTEXT_SOURCES.items()}


def draw_contexts(class_ids: np.ndarray, first_detection_mjd_tai: np.ndarray, survey: str, rng: np.random.Generator,
                  context_fields_by_survey: dict[str, tuple[str, ...]] = LEGACY_CONTEXT_FIELDS_BY_SURVEY
                  ) -> np.ndarray:
    """(N, N_CONTEXT) contexts for simulated curves of `class_ids` whose first detection is given (MJD TAI; NaN: none).

    ZTF: a real context of the class's kind, its history set against the simulated curve (module docstring).
    LSST: what a Rubin alert says, as a model of table `context_fields_by_survey` is shown it (module docstring).
    """
    if survey == "lsst":
        return _rubin_contexts(class_ids, first_detection_mjd_tai, rng, context_fields_by_survey)
    if survey != "ztf":
        raise ValueError(f"survey={survey!r}: expected 'lsst' or 'ztf'")
    n = len(class_ids)
    contexts = _real_contexts(class_ids, rng)
    # Jitter, so that a few hundred real contexts do not become a few hundred memorised points.
    distances = [CONTEXT_INDEX[f] for f in ("star_distance_arcsec", "ss_distance_arcsec", "gaia_distance_arcsec",
                                             "ref_distance_arcsec")]
    contexts[:, distances] *= 10.0 ** rng.normal(0.0, DISTANCE_JITTER_DEX, (n, len(distances)))
    contexts[:, CONTEXT_INDEX["ref_mag_ab"]] += rng.normal(0.0, REF_MAG_JITTER, n)
    contexts[:, _FIRST_DETECTION] = first_detection_mjd_tai - _earlier_history_days(class_ids, rng)
    contexts[:, _N_HISTORY] = np.nan  # a count fixed here would not follow the training's cuts (module docstring)
    return contexts


def _rubin_contexts(class_ids: np.ndarray, first_detection_mjd_tai: np.ndarray, rng: np.random.Generator,
                    context_fields_by_survey: dict[str, tuple[str, ...]]) -> np.ndarray:
    """(N, N_CONTEXT): the LSST branch of `draw_contexts`."""
    n = len(class_ids)
    solar_system = class_ids == SOLAR_SYSTEM_ID  # a known asteroid: keyed by its ssObjectId, no diaObject
    shown = context_fields_by_survey.get("rubin", CONTEXT_FIELDS)
    # drawn only when shown: the pools decode every real train packet, and a hidden draw would be masked anyway
    reliability = _real_contexts(class_ids, rng)[:, _REAL_BOGUS] if "real_bogus" in shown else np.full(n, np.nan)
    first_detection = np.minimum(first_detection_mjd_tai, np.maximum(
        first_detection_mjd_tai - _earlier_history_days(class_ids, rng), SURVEY_START_MJD_TAI))
    contexts = rubin_contexts(solar_system, reliability, np.where(solar_system, np.nan, first_detection),
                              np.full(n, np.nan))
    return model_context(contexts, np.full(n, "rubin"), context_fields_by_survey)


def _real_contexts(class_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, N_CONTEXT): for each curve, a real train packet's context of its class's kind (`CONTEXT_SOURCES`)."""
    pools = real_context_pools()
    contexts = np.empty((len(class_ids), N_CONTEXT))
    for cid in np.unique(class_ids):
        rows = np.flatnonzero(class_ids == cid)
        pool = pools[int(cid)]
        contexts[rows] = pool[rng.integers(0, len(pool), len(rows))]
    return contexts


def _earlier_history_days(class_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N,) days each source was first detected before its curve's first detection: `LONG_HISTORY_DAYS` for the
    long-lived classes and half the flaring stars, 0 for the rest."""
    n = len(class_ids)
    long_lived = np.isin(class_ids, LONG_LIVED) | ((class_ids == FLARE_ID) & (rng.random(n) < 0.5))
    return np.where(long_lived, rng.uniform(*LONG_HISTORY_DAYS, n), 0.0)

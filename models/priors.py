"""Class priors: how often each class occurs in a stream, and probabilities under them.

The model is trained class-balanced, so its probabilities assume every class is equally
common. A stream is not: on a Rubin-like stream most alerts are SNe Ia and II. Under a
prior pi (shares by class), Bayes' rule turns the balanced probabilities p into
``p_i pi_i / sum_j p_j pi_j`` (`apply_prior`); ``scoring.class_prior`` chooses the prior
the service publishes under.
"""
import numpy as np

from models.taxonomy import CLASS_IDS, ID_TO_INDEX, N_CLASSES, SOLAR_SYSTEM_ID

# Class mix of a realistic Rubin stream (PLAsTiCC test set, SCIENCE.md section 3), by ELAsTiCC2 id.
# PLAsTiCC had no dwarf novae; they get 1 %, like SLSNe (an assumption).
PLASTICC_SHARES: dict[int, float] = {
    2222: 0.47, 2224: 0.29, 2223: 0.05, 2323: 0.06, 2332: 0.03, 2325: 0.03,
    2233: 0.03, 2242: 0.01, 2243: 0.004, 2232: 0.0001, 2234: 0.01,
}
# PLAsTiCC had no asteroids; "lsst-plasticc" gives known and unknown asteroids 1 % (an assumption).
LSST_PLASTICC_PRIOR: dict[int, float] = PLASTICC_SHARES | {SOLAR_SYSTEM_ID: 0.01}
# Class mix of ZTF's public alert stream, per alert, within the 12 classes. An order-of-magnitude
# assumption, not a measurement (no per-class census of the stream was at hand): variable stars
# (EB, RR Lyrae and the other periodic stars they stand for) and AGN repeat night after night and
# make most alerts; solar-system objects a fifth (most known: their context masks them anyway);
# supernovae about 2 %, as bright transients are rare against the repeating sources (the BTS mix
# inside them: Ia 60 %, II 30 %, Ib/c 10 %). Publish under your own measured table with
# ``scoring.class_prior = "rates"``.
ZTF_ALERTS_PRIOR: dict[int, float] = {
    2325: 0.30, 2323: 0.15, 2332: 0.20, SOLAR_SYSTEM_ID: 0.20, 2234: 0.02, 2233: 0.01,
    2222: 0.012, 2224: 0.006, 2223: 0.002, 2242: 0.0005, 2243: 0.0002, 2232: 0.00001,
}
NAMED_PRIORS = ("balanced", "lsst-plasticc", "ztf-alerts")
_NAMED_TABLES = {"lsst-plasticc": LSST_PLASTICC_PRIOR, "ztf-alerts": ZTF_ALERTS_PRIOR}


def prior_weights(prior: str | dict[int, float]) -> np.ndarray:
    """(C,) float64 shares in `CLASS_IDS` order, summing to 1.

    Parameters
    ----------
    prior : "balanced", "lsst-plasticc", "ztf-alerts", or a dict of ELAsTiCC2 class id to relative rate
        A dict must give every class a rate > 0 (a class of rate 0 could never be published).

    >>> prior_weights("balanced").round(4).tolist()[:2]
    [0.0833, 0.0833]
    >>> round(float(prior_weights("lsst-plasticc")[0]), 3)
    0.473
    """
    if prior == "balanced":
        return np.full(N_CLASSES, 1.0 / N_CLASSES)
    rates = _NAMED_TABLES.get(prior, prior) if isinstance(prior, str) else prior
    if not isinstance(rates, dict):
        raise ValueError(f"class prior {prior!r}: expected one of {', '.join(NAMED_PRIORS)} or a table of rates")
    missing = [cid for cid in CLASS_IDS if cid not in rates]
    unknown = [cid for cid in rates if cid not in ID_TO_INDEX]
    if missing or unknown:
        raise ValueError(f"class prior: missing class id(s) {missing}, unknown class id(s) {unknown}")
    weights = np.array([float(rates[cid]) for cid in CLASS_IDS])
    if not np.all(np.isfinite(weights) & (weights > 0)):
        raise ValueError("class prior: every rate must be a finite number > 0")
    return weights / weights.sum()


def apply_prior(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B, C) probabilities under the prior `weights` of balanced-prior `probs` (B, C), rows summing to 1.

    >>> p = np.array([[0.5, 0.5] + [0.0] * (N_CLASSES - 2)])
    >>> w = np.array([0.75, 0.25] + [0.0] * (N_CLASSES - 2))
    >>> apply_prior(p, w)[0, :2].tolist()
    [0.75, 0.25]
    """
    weighted = probs * weights  # (B, C)
    return (weighted / weighted.sum(axis=1, keepdims=True)).astype(probs.dtype)

"""Follow-up rules: which scored alerts deserve a follow-up request. Pure and vectorised.

A rule (`stream.config.FollowupRule`) fires for an alert when every condition it
sets holds; each condition is one numpy boolean mask over the batch, so a batch
of B alerts costs a handful of array operations per rule, with no Python loop
over alerts. Deciding whether the object was already triggered for the rule is
not a rule's business: `stream.journal.FollowupJournal` does that in Redis.
"""
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.bands import BAND_NAMES
from stream.config import FollowupRule, SkyRegion, class_index
from stream.scored import ScoredBatch

# A known asteroid this close (arcsec) is the source (Fink's solar-system match radius is 5").
SOLAR_SYSTEM_MATCH_ARCSEC = 5.0


@dataclass(frozen=True)
class Trigger:
    """Rule `rule` fired for the alert at row `index` of its `ScoredBatch`."""

    index: int
    rule: str


def angular_distance_deg(ra1_deg, dec1_deg, ra2_deg, dec2_deg) -> np.ndarray:
    """Great-circle distance between points on the sphere (haversine formula).

    Parameters
    ----------
    ra1_deg, dec1_deg, ra2_deg, dec2_deg : array-like of float
        Right ascensions and declinations (degrees); broadcast together.

    Returns
    -------
    ndarray of float64
        Distance (degrees), in [0, 180]. Stable for small separations, unlike the
        spherical law of cosines.

    >>> round(float(angular_distance_deg(359.5, 0.0, 0.5, 0.0)), 9)
    1.0
    >>> round(float(angular_distance_deg(0.0, 89.5, 180.0, 89.5)), 9)
    1.0
    """
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (ra1_deg, dec1_deg, ra2_deg, dec2_deg))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def in_region(ra_deg, dec_deg, region: SkyRegion) -> np.ndarray:
    """Boolean mask: which positions (degrees) lie within `region`'s cone (edge included)."""
    return angular_distance_deg(ra_deg, dec_deg, region.ra_deg, region.dec_deg) <= region.radius_deg


def known_solar_system(batch: ScoredBatch) -> np.ndarray:
    """(B,) bool: alerts within `SOLAR_SYSTEM_MATCH_ARCSEC` of a known solar-system object."""
    return batch.context_field("ss_distance_arcsec") <= SOLAR_SYSTEM_MATCH_ARCSEC


def rule_mask(rule: FollowupRule, batch: ScoredBatch) -> np.ndarray:
    """Where `rule` fires in `batch`.

    Parameters
    ----------
    rule : FollowupRule
        Conditions left as None are not checked; ``min_visits`` and
        ``min_detections`` (default 1) always are.
    batch : ScoredBatch
        B scored alerts.

    Returns
    -------
    (B,) bool ndarray
        True where every condition holds. A NaN score or magnitude never passes
        (comparisons with NaN are False): a zero flux has no magnitude, so no
        ``max_mag_ab`` rule fires on it. A context condition on a field the packet
        lacks (NaN) is not applied. A known solar-system object never passes.
    """
    mask = (batch.n_visits >= rule.min_visits) & (batch.n_detections >= rule.min_detections)
    mask &= ~known_solar_system(batch)
    if rule.min_sn_likelihood is not None:
        mask &= batch.sn_likelihood >= rule.min_sn_likelihood
    if rule.min_flare_likelihood is not None:
        mask &= batch.flare_likelihood >= rule.min_flare_likelihood
    for name, threshold in (rule.min_prob or {}).items():
        mask &= batch.probs[:, class_index(name)] >= threshold
    if rule.max_age_days is not None:
        old = batch.age_days > rule.max_age_days
        if rule.young_history_detections is not None:
            old &= ~(batch.context_field("n_detections_history") <= rule.young_history_detections)
        mask &= ~old
    if rule.min_real_bogus is not None:
        mask &= ~(batch.context_field("real_bogus") < rule.min_real_bogus)
    if rule.max_star_score is not None:
        near = batch.context_field("star_distance_arcsec") <= rule.star_match_arcsec
        mask &= ~(near & (batch.context_field("star_score") > rule.max_star_score))
    if rule.max_mag_ab is not None:
        mask &= batch.latest_mag_ab <= rule.max_mag_ab
    if rule.max_host_redshift is not None:
        mask &= ~(batch.context_field("host_redshift") > rule.max_host_redshift)
    if rule.max_host_separation_arcsec is not None:
        mask &= ~(batch.context_field("host_separation_arcsec") > rule.max_host_separation_arcsec)
    if rule.region is not None:
        mask &= in_region(batch.ra_deg, batch.dec_deg, rule.region)
    if rule.surveys is not None:
        mask &= np.isin(batch.survey.astype(str), rule.surveys)
    return mask


def evaluate(rules: Sequence[FollowupRule], batch: ScoredBatch) -> list[Trigger]:
    """Every (alert, rule) pair of `batch` where the rule fires.

    Parameters
    ----------
    rules : sequence of FollowupRule
        The configured rules (``FollowupSettings.rules``).
    batch : ScoredBatch
        B scored alerts.

    Returns
    -------
    list of Trigger
        In input order (batch row), then in the order of `rules`.
    """
    fired = [(int(i), k) for k, rule in enumerate(rules) for i in np.flatnonzero(rule_mask(rule, batch))]
    return [Trigger(i, rules[k].name) for i, k in sorted(fired)]


def followup_record(batch: ScoredBatch, index: int, rule: str, created_ms: int) -> dict:
    """The ``alertformer.followup`` record of the alert at row `index` for rule `rule`.

    Parameters
    ----------
    batch : ScoredBatch
    index : int
        Row of the triggering alert in `batch`.
    rule : str
        Name of the rule that fired.
    created_ms : int
        When the request is made (ms since the Unix epoch, UTC).

    Returns
    -------
    dict
        Fields of ``stream/schemas/alertformer.followup.avsc``: ``latestBand`` as a
        band name (e.g. ``lsst-r``), ``latestMagAb`` None for a zero flux.
    """
    mag_ab = float(batch.latest_mag_ab[index])
    return {
        "objectId": batch.object_id[index],
        "alertId": int(batch.alert_id[index]),
        "rule": rule,
        "raDeg": float(batch.ra_deg[index]),
        "decDeg": float(batch.dec_deg[index]),
        "snLikelihood": float(batch.sn_likelihood[index]),
        "flareLikelihood": float(batch.flare_likelihood[index]),
        "nVisits": int(batch.n_visits[index]),
        "latestMjdTai": float(batch.latest_mjd_tai[index]),
        "latestBand": BAND_NAMES[int(batch.latest_band[index])],
        "latestFluxNjy": float(batch.latest_flux_njy[index]),
        "latestMagAb": None if np.isnan(mag_ab) else mag_ab,
        "modelVersion": batch.model_version,
        "createdMs": int(created_ms),
    }

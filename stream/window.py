"""Windows: each alert's photometry merged with the object's stored history.

Alerts of one object within a batch are applied in input order, so the second
alert's window includes the first one's points. A window holds only points up to
the alert's own source time (MJD TAI), so re-scoring an alert after a crash gives
the same window even if later alerts already reached the store.
"""
from dataclasses import dataclass

import numpy as np

from models.context import N_CONTEXT, model_context
from models.lightcurve import LightCurve
from stream.alert import DecodedAlert

TIME_SLACK_DAYS = 1e-6  # ~0.1 s: the triggering source itself must stay in its window


@dataclass(frozen=True)
class Windows:
    """Per alert, the curve and context (B, N_CONTEXT) to score, and the context as the model is shown it
    (`models.context.model_context`); per object, the merged curve to store."""

    curves: list[LightCurve]
    contexts: np.ndarray
    merged: dict[str, LightCurve]
    model_contexts: np.ndarray


def _until(curve: LightCurve, mjd_tai: float) -> LightCurve:
    """The points of `curve` up to `mjd_tai` (MJD TAI); `curve` itself when that is all of them."""
    keep = curve.mjd_tai <= mjd_tai + TIME_SLACK_DAYS
    if keep.all():
        return curve
    return LightCurve(*(getattr(curve, f)[keep] for f in LightCurve.FIELDS))


def trigger_index(alert: DecodedAlert) -> int:
    """Index of the triggering source in the alert's curve; its latest point if the id is absent."""
    hit = np.flatnonzero(alert.light_curve.source_id == alert.source_id)
    return int(hit[0]) if hit.size else len(alert.light_curve) - 1


def trigger_mjd_tai(alert: DecodedAlert) -> float:
    """Time of the alert's triggering source (MJD TAI)."""
    return float(alert.light_curve.mjd_tai[trigger_index(alert)])


def build_windows(alerts: list[DecodedAlert], history: dict[str, LightCurve]) -> Windows:
    merged = dict(history)
    curves = []
    for alert in alerts:
        stored = merged.get(alert.object_id)
        if stored is None or len(stored) == 0:
            curve = alert.light_curve
            merged[alert.object_id] = curve
        else:
            merged[alert.object_id] = LightCurve.concatenate([stored, alert.light_curve])
            earlier = _until(stored, trigger_mjd_tai(alert))
            curve = merged[alert.object_id] if earlier is stored else LightCurve.concatenate(
                [earlier, alert.light_curve])
        curves.append(curve)
    contexts = np.stack([a.context for a in alerts]) if alerts else np.empty((0, N_CONTEXT))
    return Windows(curves, contexts, {a.object_id: merged[a.object_id] for a in alerts},
                   model_context(contexts, [a.survey for a in alerts]))


def first_detection_mjd_tai(curves: list[LightCurve]) -> np.ndarray:
    """(B,) float64: time of each window's first detection (MJD TAI); NaN for a window without one."""
    return np.array([c.mjd_tai[c.is_detection][0] if c.is_detection.any() else np.nan for c in curves],
                    dtype=np.float64)

"""Windows: each alert's photometry merged with the object's stored history.

Alerts of one object within a batch are applied in input order, so the second
alert's window includes the first one's points. A window holds only points up to
the alert's own source time (MJD TAI), so re-scoring an alert after a crash gives
the same window even if later alerts already reached the store.
"""
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.context import model_context
from models.lightcurve import LightCurve
from models.lightcurves import LightCurves
from stream.alert import AlertBatch

TIME_SLACK_DAYS = 1e-6  # ~0.1 s: the triggering source itself must stay in its window


@dataclass(frozen=True)
class Windows:
    """Per alert, the curve to score (`curves`, ids the alert ids), the context (B, N_CONTEXT), the context as
    the model is shown it (`models.context.model_context`) and where its triggering source is in its own
    curve (`trigger_index`, (B,) int64: point ``trigger_index[i]`` of ``alerts.curves[i]``); per object,
    the merged curve to store."""

    curves: LightCurves
    contexts: np.ndarray
    merged: dict[str, LightCurve]
    model_contexts: np.ndarray
    trigger_index: np.ndarray

    def select(self, keep: np.ndarray) -> "Windows":
        """The windows of the alerts where `keep` ((B,) bool) is true, in order; `merged` stays whole."""
        if keep.all():
            return self
        return Windows(self.curves.take(keep), self.contexts[keep], self.merged, self.model_contexts[keep],
                       self.trigger_index[keep])


def _until(curve: LightCurve, mjd_tai: float) -> LightCurve:
    """The points of `curve` up to `mjd_tai` (MJD TAI); `curve` itself when that is all of them."""
    keep = curve.mjd_tai <= mjd_tai + TIME_SLACK_DAYS
    if keep.all():
        return curve
    return LightCurve(*(getattr(curve, f)[keep] for f in LightCurve.FIELDS))


def build_windows(alerts: AlertBatch, history: dict[str, LightCurve]) -> Windows:
    """The windows of `alerts` over the stored curves `history` (object id -> curve), see the module docstring.

    An alert whose object has no stored points and no other alert in the batch is scored on its own
    curve, a view of the decoder's columns; only the others go through the per-object merge.
    """
    trigger = alerts.trigger_points()  # (B,)
    trigger_mjd_tai = alerts.curves.mjd_tai[trigger]  # (B,)
    objects = alerts.object_id.tolist()
    per_object = Counter(objects)
    own = np.fromiter((per_object[o] == 1 and (o not in history or len(history[o]) == 0) for o in objects),
                      dtype=np.bool_, count=len(objects))  # (B,)
    merged = dict(history)
    merged_windows = []
    others = np.flatnonzero(~own)
    for i in others.tolist():
        object_id, own_curve = objects[i], alerts.curves[i]
        stored = merged.get(object_id)
        if stored is None or len(stored) == 0:
            curve = merged[object_id] = own_curve
        else:
            merged[object_id] = LightCurve.concatenate([stored, own_curve])
            earlier = _until(stored, trigger_mjd_tai[i])
            curve = merged[object_id] if earlier is stored else LightCurve.concatenate([earlier, own_curve])
        merged_windows.append(curve)
    curves = alerts.curves
    if len(others):
        mine = np.flatnonzero(own)
        curves = LightCurves.concatenate([curves.take(mine),
                                          LightCurves.from_list(merged_windows, ids=alerts.alert_id[others])])
        curves = curves.take(np.argsort(np.concatenate([mine, others])))
    stored_back = {}
    for i, object_id in enumerate(objects):
        if object_id not in stored_back:
            stored_back[object_id] = alerts.curves[i] if own[i] else merged[object_id]
    return Windows(curves, alerts.context, stored_back, model_context(alerts.context, alerts.survey.tolist()),
                   trigger - alerts.curves.offsets[:-1])


def first_detection_mjd_tai(curves: LightCurves | Sequence[LightCurve]) -> np.ndarray:
    """(B,) float64: time of each curve's first detection (MJD TAI); NaN for a curve without one."""
    if not isinstance(curves, LightCurves):
        curves = LightCurves.from_list(list(curves))
    first = np.full(len(curves), np.inf)
    np.minimum.at(first, curves.owner(), np.where(curves.is_detection, curves.mjd_tai, np.inf))
    return np.where(np.isfinite(first), first, np.nan)

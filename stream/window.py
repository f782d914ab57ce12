"""Windows: each alert's photometry merged with the object's stored history, all alerts of a batch at once.

Alerts of one object within a batch are applied in input order, so the second
alert's window includes the first one's points. A window holds only points up to
the alert's own source time (MJD TAI), so re-scoring an alert after a crash gives
the same window even if later alerts already reached the store.
"""
import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.context import model_context
from models.lightcurve import LightCurve
from models.lightcurves import CurvesById, LightCurves
from stream.alert import AlertBatch

TIME_SLACK_DAYS = 1e-6  # ~0.1 s: the triggering source itself must stay in its window


@dataclass(frozen=True)
class Windows:
    """Per alert, the curve to score (`curves`, ids the alert ids), the context (B, N_CONTEXT), the context as
    the model is shown it (`models.context.model_context` with the model's table) and where its triggering
    source is in its own curve (`trigger_index`, (B,) int64: point ``trigger_index[i]`` of
    ``alerts.curves[i]``); per object, the merged curve to store."""

    curves: LightCurves
    contexts: np.ndarray
    merged: CurvesById
    model_contexts: np.ndarray
    trigger_index: np.ndarray

    def select(self, keep: np.ndarray) -> "Windows":
        """The windows of the alerts where `keep` ((B,) bool) is true, in order; `merged` stays whole."""
        if keep.all():
            return self
        return Windows(self.curves.take(keep), self.contexts[keep], self.merged, self.model_contexts[keep],
                       self.trigger_index[keep])


def build_windows(alerts: AlertBatch, history: dict[str, LightCurve],
                  context_fields_by_survey: Mapping[str, tuple[str, ...]]) -> Windows:
    """The windows of `alerts` over the stored curves `history` (object id -> curve), see the module docstring;
    their contexts as a model of table `context_fields_by_survey` (its ``ModelConfig``'s) is shown them.

    An alert whose object has no stored points and no other alert in the batch is scored on its own
    curve as the decoder gave it; the others are merged all at once (`_merged`).
    """
    trigger = alerts.trigger_points()  # (B,)
    objects = alerts.object_id.tolist()
    per_object = Counter(objects)
    own = np.fromiter((per_object[o] == 1 and (o not in history or len(history[o]) == 0) for o in objects),
                      dtype=np.bool_, count=len(objects))  # (B,)
    curves, mine, others = alerts.curves, np.flatnonzero(own), np.flatnonzero(~own)
    stored_back = dataclasses.replace(alerts.curves.take(mine), ids=alerts.object_id[mine])
    if len(others):
        merged_windows, merged = _merged(alerts.take(others), alerts.curves.mjd_tai[trigger[others]], history)
        curves = LightCurves.concatenate([curves.take(mine), merged_windows])
        curves = curves.take(np.argsort(np.concatenate([mine, others])))
        first_seen = {}
        for i, object_id in enumerate(objects):
            first_seen.setdefault(object_id, i)
        stored_back = LightCurves.concatenate([stored_back, merged])
        stored_back = stored_back.take(np.argsort([first_seen[o] for o in stored_back.ids.tolist()], kind="stable"))
    shown = model_context(alerts.context, alerts.survey.tolist(), context_fields_by_survey)
    return Windows(curves, alerts.context, stored_back.by_id(), shown, trigger - alerts.curves.offsets[:-1])


def _merged(alerts: AlertBatch, trigger_mjd_tai: np.ndarray,
            history: dict[str, LightCurve]) -> tuple[LightCurves, LightCurves]:
    """The windows of `alerts` (K, in batch order; their triggering sources' times (K,), MJD TAI), and each of
    their objects' merged curve (ids: the object ids), with the stored curves `history`: every object at once.

    Each object's stream is its stored points, then its alerts' points in batch order. A point is kept
    where its source id first occurs in the stream (stored points win). Alert k's window is the kept
    points before its own, up to its trigger time, and its own points whose ids those lack; the
    merged curve is every kept point. Both are sorted by time, ties in stream order: what merging the
    alerts one by one (`LightCurve.concatenate`) gives.
    """
    objects = alerts.object_id.tolist()
    index_of: dict[str, int] = {}
    group = np.fromiter((index_of.setdefault(o, len(index_of)) for o in objects), np.int64, len(objects))  # (K,)
    names = list(index_of)
    n_groups, n_alerts = len(names), len(alerts)
    stored = LightCurves.from_list([history[o] if o in history else LightCurve.empty() for o in names])
    source = LightCurves.concatenate([stored, alerts.curves])  # G stored curves, then K alert curves

    # Segments of the streams: each object's stored curve (rank 0), then its alerts (rank 1, 2, ...).
    rank = np.empty(n_alerts, np.int64)
    by_object = np.argsort(group, kind="stable")
    first_of_object = np.searchsorted(group[by_object], np.arange(n_groups))
    rank[by_object] = np.arange(n_alerts) - np.repeat(first_of_object, np.bincount(group, minlength=n_groups)) + 1
    segment_group = np.concatenate([np.arange(n_groups), group])  # (G + K,)
    segment_order = np.lexsort((np.concatenate([np.zeros(n_groups, np.int64), rank]), segment_group))
    streams = source.take(segment_order)  # one curve per segment, objects' streams one after another
    segment_start = np.empty(n_groups + n_alerts, np.int64)
    segment_start[segment_order] = streams.offsets[:-1]  # stream position of each segment's first point
    owner = streams.owner()  # (P,) segment of each stream point
    point_group = segment_group[segment_order][owner]  # (P,)
    position = np.arange(streams.n_points)  # (P,) stream order
    sid, mjd = streams.source_id, streams.mjd_tai
    by_id = np.lexsort((position, sid, point_group))
    repeated = np.zeros(len(by_id), np.bool_)
    repeated[1:] = (sid[by_id][1:] == sid[by_id][:-1]) & (point_group[by_id][1:] == point_group[by_id][:-1])
    kept = np.empty(len(by_id), np.bool_)
    kept[by_id] = ~repeated  # (P,) the first occurrence of its id in its object's stream

    # Alert k looks at its object's stream from its start to the end of its own points.
    own_start = segment_start[n_groups:]  # (K,)
    look_from = segment_start[group]  # (K,) the stored segment starts each object's stream
    n_look = own_start + alerts.curves.lengths - look_from  # (K,)
    pair_alert = np.repeat(np.arange(n_alerts), n_look)  # (Q,)
    pair_point = np.repeat(look_from - (np.cumsum(n_look) - n_look), n_look) + np.arange(int(n_look.sum()))  # (Q,)
    is_own = pair_point >= own_start[pair_alert]
    candidate = np.flatnonzero(is_own | (kept[pair_point] & (mjd[pair_point] <= trigger_mjd_tai[pair_alert]
                                                             + TIME_SLACK_DAYS)))
    # own points whose id an earlier candidate has leave (stored points win), then time order
    alert_c, point_c = pair_alert[candidate], pair_point[candidate]
    by_pair_id = np.lexsort((point_c, sid[point_c], alert_c))
    again = np.zeros(len(by_pair_id), np.bool_)
    again[1:] = (sid[point_c][by_pair_id][1:] == sid[point_c][by_pair_id][:-1]) & (
        alert_c[by_pair_id][1:] == alert_c[by_pair_id][:-1])
    alert_c, point_c = alert_c[by_pair_id][~again], point_c[by_pair_id][~again]
    in_time = np.lexsort((point_c, mjd[point_c], alert_c))
    window_point = point_c[in_time]
    windows = LightCurves.from_points(np.bincount(alert_c, minlength=n_alerts),
                                      [getattr(streams, f)[window_point] for f in LightCurves.FIELDS],
                                      alerts.alert_id)

    merged_point = np.flatnonzero(kept)
    merged_point = merged_point[np.lexsort((merged_point, mjd[merged_point], point_group[merged_point]))]
    merged = LightCurves.from_points(np.bincount(point_group[merged_point], minlength=n_groups),
                                     [getattr(streams, f)[merged_point] for f in LightCurves.FIELDS],
                                     np.array(names, dtype=object))
    return windows, merged


def first_detection_mjd_tai(curves: LightCurves | Sequence[LightCurve]) -> np.ndarray:
    """(B,) float64: time of each curve's first detection (MJD TAI); NaN for a curve without one."""
    if not isinstance(curves, LightCurves):
        curves = LightCurves.from_list(list(curves))
    first = np.full(len(curves), np.inf)
    np.minimum.at(first, curves.owner(), np.where(curves.is_detection, curves.mjd_tai, np.inf))
    return np.where(np.isfinite(first), first, np.nan)

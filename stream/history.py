"""Stored light curves in Redis: one packed array per object, read and written once per batch.

A curve is packed as a little-endian numpy structured array (26 bytes a point), so a
read is one ``MGET`` for the whole batch and a write one pipelined ``SET ... EX``.
When Redis is unreachable the store answers "no history" and counts the outage:
windows fall back to the alert's own photometry and scoring goes on.

The store also keeps the Redis outage accounting of the scorer's other Redis users (state
writer, follow-up journal): after a call times out, `usable` says no for the rest of the
batch (until `new_batch`), so a frozen Redis costs one timeout per batch, not one per call.
"""
import logging
from collections.abc import Mapping

import numpy as np
import redis

from models.lightcurve import LightCurve
from models.lightcurves import CurvesById, LightCurves
from stream.decode.physical import implausible
from stream.keys import Keys

log = logging.getLogger(__name__)

PACKED_DTYPE = np.dtype([
    ("source_id", "<i8"), ("mjd_tai", "<f8"), ("band", "i1"),
    ("flux_njy", "<f4"), ("flux_err_njy", "<f4"), ("is_detection", "?"),
])


def pack(curve: LightCurve) -> bytes:
    return packed(LightCurves.from_list([curve]), len(curve))[0]


def packed(curves: LightCurves, max_points: int) -> list[bytes]:
    """The last `max_points` points of each curve, packed (`PACKED_DTYPE`): one array for all of them."""
    rows = np.empty(curves.n_points, dtype=PACKED_DTYPE)
    for name in LightCurve.FIELDS:
        rows[name] = getattr(curves, name)
    blob, size = rows.tobytes(), PACKED_DTYPE.itemsize
    ends = curves.offsets[1:]
    starts = np.maximum(curves.offsets[:-1], ends - max_points)
    return [blob[a * size:b * size] for a, b in zip(starts.tolist(), ends.tolist())]


def last_points(curve: LightCurve, max_points: int) -> LightCurve:
    """The last `max_points` points of `curve`: what the store keeps of an object."""
    if len(curve) <= max_points:
        return curve
    return LightCurve(*(getattr(curve, f)[-max_points:] for f in LightCurve.FIELDS))


def unpack(blob: bytes) -> LightCurve:
    rows = np.frombuffer(blob, dtype=PACKED_DTYPE)
    return LightCurve(*(np.ascontiguousarray(rows[name]) for name in LightCurve.FIELDS))


class HistoryStore:
    """Per-object light curves under ``{prefix}:lc:{objectId}`` with a TTL."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: int, max_points: int):
        self.client, self.keys, self.ttl_s, self.max_points = client, keys, ttl_s, max_points
        self.outages = 0
        self.skipped_calls = 0  # Redis calls skipped because an earlier one of the same batch timed out
        self._timed_out = False
        self.dropped_points = 0  # implausible points in stored curves (written before decoders checked them)

    def get(self, object_ids: list[str]) -> dict[str, LightCurve]:
        """Stored curves of the distinct `object_ids` ({} on a Redis outage, which is counted)."""
        unique = list(dict.fromkeys(object_ids))
        if not unique or not self.usable():
            return {}
        try:
            blobs = self.client.mget([self.keys.light_curve(o) for o in unique])
        except redis.RedisError as err:
            self.outage("read", err)
            return {}
        return {o: self._plausible(unpack(b)) for o, b in zip(unique, blobs) if b}

    def _plausible(self, curve: LightCurve) -> LightCurve:
        """`curve` without points that `stream.decode.physical` rejects, counted."""
        bad = implausible(curve.mjd_tai, curve.flux_njy, curve.flux_err_njy)
        if not bad.any():
            return curve
        self.dropped_points += int(bad.sum())
        return LightCurve(*(getattr(curve, f)[~bad] for f in LightCurve.FIELDS))

    def put(self, curves: Mapping[str, LightCurve], pipe=None) -> None:
        """Store the last `max_points` of each curve (object id -> curve; a `CurvesById` is packed without a
        view per curve); on a pipeline if given (the caller executes it)."""
        target = pipe if pipe is not None else self.client.pipeline(transaction=False)
        columns = curves.curves if isinstance(curves, CurvesById) else LightCurves.from_list(
            list(curves.values()), ids=np.array(list(curves), dtype=object))
        for object_id, blob in zip(columns.ids.tolist(), packed(columns, self.max_points)):
            target.set(self.keys.light_curve(object_id), blob, ex=self.ttl_s)
        if pipe is None and self.usable():
            try:
                target.execute()
            except redis.RedisError as err:
                self.outage("write", err)

    def new_batch(self) -> None:
        """A new batch begins: let Redis calls through again."""
        self._timed_out = False

    def usable(self) -> bool:
        """Whether to call Redis now: False (counted in `skipped_calls`) once a call of this batch timed out."""
        if self._timed_out:
            self.skipped_calls += 1
        return not self._timed_out

    def outage(self, what: str, err: Exception) -> None:
        """Count and log a failed Redis call `what`; a timeout skips Redis for the rest of the batch."""
        self.outages += 1
        self._timed_out = self._timed_out or isinstance(err, redis.TimeoutError)
        log.warning("redis outage op=%s outages=%d error=%s", what, self.outages, err)

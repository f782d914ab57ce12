"""Stored light curves in Redis: one packed array per object, read and written once per batch.

A curve is packed as a little-endian numpy structured array (26 bytes a point), so a
read is one ``MGET`` for the whole batch and a write one pipelined ``SET ... EX``.
When Redis is unreachable the store answers "no history" and counts the outage in the
process's `stream.redis_io.RedisHealth`: windows fall back to the alert's own photometry
and scoring goes on.
"""
import logging
from collections.abc import Mapping

import numpy as np
import redis

from models.lightcurve import LightCurve
from models.lightcurves import CurvesById, LightCurves
from stream.decode.physical import implausible
from stream.keys import Keys
from stream.redis_io import RedisHealth

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

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: int, max_points: int,
                 health: RedisHealth | None = None):
        self.client, self.keys, self.ttl_s, self.max_points = client, keys, ttl_s, max_points
        self.health = health if health is not None else RedisHealth()
        self.dropped_points = 0  # implausible points in stored curves (written before decoders checked them)

    def get(self, object_ids: list[str]) -> dict[str, LightCurve]:
        """Stored curves of the distinct `object_ids` ({} on a Redis outage, which is counted)."""
        unique = list(dict.fromkeys(object_ids))
        if not unique or not self.health.usable():
            return {}
        try:
            blobs = self.client.mget([self.keys.light_curve(o) for o in unique])
        except redis.RedisError as err:
            self.health.outage("read", err)
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
        if pipe is None and self.health.usable():
            try:
                target.execute()
            except redis.RedisError as err:
                self.health.outage("write", err)

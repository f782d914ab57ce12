"""`DecodedAlert`: what every per-message decoder returns, whatever the survey; `AlertBatch`: a batch of
them as columns, what the batch decoders return and the scoring service carries."""
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.context import N_CONTEXT, missing_context
from models.lightcurve import LightCurve
from models.lightcurves import LightCurves


@dataclass(frozen=True)
class DecodedAlert:
    """One alert packet, decoded and normalised (nJy, MJD TAI, band names mapped to codes).

    Attributes
    ----------
    survey : str
        ``"rubin"``, ``"ztf"`` or ``"elasticc"``.
    schema : str
        The writer schema, e.g. ``"lsst.v10_0.alert"`` or ``"ztf 3.3"``.
    alert_id : int
        The packet's id (Rubin/ELAsTiCC ``alertId`` or ``diaSourceId``, ZTF ``candid``).
    source_id : int
        Id of the triggering detection (``diaSource.diaSourceId`` / ``candidate.candid``).
    object_id : str
        Object id as text (Rubin ``diaObjectId``, ZTF ``objectId``): the Kafka key.
    ra_deg, dec_deg : float
        Position of the triggering detection (ICRS, degrees).
    light_curve : LightCurve
        Triggering source plus all previous sources, forced photometry and
        upper limits carried by the packet, deduplicated by source id, physically
        plausible (`stream.decode.physical`).
    dropped_points : int
        Points of the packet's history left out as implausible (counted by the service).
    context : (N_CONTEXT,) float64 ndarray
        What the packet says beyond photometry (`models.context`: real/bogus, nearest star,
        detection history, known solar-system object, ...); NaN where it does not say.
    """

    survey: str
    schema: str
    alert_id: int
    source_id: int
    object_id: str
    ra_deg: float
    dec_deg: float
    light_curve: LightCurve
    context: np.ndarray = field(default_factory=missing_context)
    dropped_points: int = 0


@dataclass(frozen=True, eq=False)
class AlertBatch:
    """B decoded alerts as columns: `DecodedAlert`'s fields, one array each, and their curves as one
    `LightCurves` (ids: the alert ids). What the batch decoders give and the window step reads.

    Attributes
    ----------
    survey, schema, object_id : (B,) object arrays of str
    alert_id, source_id : (B,) int64
    ra_deg, dec_deg : (B,) float64
        Position of the triggering detection (ICRS, degrees).
    context : (B, N_CONTEXT) float64
    dropped_points : (B,) int64
    curves : LightCurves
        Alert i's photometry is ``curves[i]``.
    """

    survey: np.ndarray
    schema: np.ndarray
    alert_id: np.ndarray
    source_id: np.ndarray
    object_id: np.ndarray
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    context: np.ndarray
    dropped_points: np.ndarray
    curves: LightCurves

    COLUMNS = ("survey", "schema", "alert_id", "source_id", "object_id", "ra_deg", "dec_deg", "context",
               "dropped_points")
    DTYPES = (object, object, np.int64, np.int64, object, np.float64, np.float64, np.float64, np.int64)

    def __len__(self) -> int:
        return len(self.alert_id)

    def alert(self, i: int) -> DecodedAlert:
        """Alert `i` as a `DecodedAlert` (its curve a view of the columns)."""
        return DecodedAlert(str(self.survey[i]), str(self.schema[i]), int(self.alert_id[i]), int(self.source_id[i]),
                            str(self.object_id[i]), float(self.ra_deg[i]), float(self.dec_deg[i]),
                            self.curves[i], self.context[i].copy(), int(self.dropped_points[i]))

    def alerts(self) -> list[DecodedAlert]:
        return [self.alert(i) for i in range(len(self))]

    def take(self, index) -> "AlertBatch":
        """The alerts at `index` ((K,) int or (B,) bool), in that order."""
        return AlertBatch(**{name: getattr(self, name)[index] for name in self.COLUMNS},
                          curves=self.curves.take(index))

    def trigger_points(self) -> np.ndarray:
        """(B,) int64: index into ``curves``' columns of each alert's triggering source; its latest point where
        the source id is absent from its curve."""
        curves = self.curves
        owner = curves.owner()  # (P,)
        hit = np.flatnonzero(curves.source_id == self.source_id[owner])[::-1]  # source ids are unique in a curve
        points = curves.offsets[1:] - 1  # (B,)
        points[owner[hit]] = hit
        return points

    @classmethod
    def from_alerts(cls, alerts: Sequence[DecodedAlert]) -> "AlertBatch":
        """The columns of `alerts`."""
        columns = {name: np.array([getattr(a, name) for a in alerts], dtype=t)
                   for name, t in zip(cls.COLUMNS, cls.DTYPES) if name != "context"}
        context = np.stack([a.context for a in alerts]) if alerts else np.empty((0, N_CONTEXT))
        return cls(**columns, context=context,
                   curves=LightCurves.from_list([a.light_curve for a in alerts], ids=columns["alert_id"]))

    @classmethod
    def concatenate(cls, parts: Sequence["AlertBatch"]) -> "AlertBatch":
        if not parts:
            return cls.from_alerts([])
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.COLUMNS},
                   curves=LightCurves.concatenate([p.curves for p in parts]))

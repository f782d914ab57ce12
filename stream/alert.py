"""`DecodedAlert`: what every decoder returns, whatever the survey."""
from dataclasses import dataclass, field

import numpy as np

from models.context import missing_context
from models.lightcurve import LightCurve


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

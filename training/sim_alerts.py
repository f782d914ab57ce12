"""Rubin alert packets from simulated LSST light curves: a replayable night, season or survey.

`RubinAlertStream` turns a `training.simulate.SimulatedSet` (LSST) into the alerts
Rubin would send for it, in alert-time order across objects. Each detection
(``is_detection`` point) triggers one alert carrying

- ``diaSource``: the detection (``scienceFlux`` = template + difference flux,
  ``timeProcessedMjdTai`` = mid-exposure + `PROCESSING_LATENCY_DAYS` where the
  schema has them);
- ``prvDiaSources``: the object's earlier detections of the last `HISTORY_DAYS`;
- ``prvDiaForcedSources``: forced photometry on every earlier visit of the last
  `HISTORY_DAYS`: the simulator's non-detection points, and, as Rubin measures
  forced photometry on every visit, a forced twin of each earlier detection (same
  visit, flux and error; id ``diaSourceId | FORCED_TWIN_ID_BIT``), which the
  decoders drop because a detection of the packet shares its visit;
- ``diaObject``: id, position, the number of detections so far and (9.0 on)
  ``validityStartMjdTai`` = the alert time.

Every other schema field gets its default (or a zero of its type), as
`stream.decode.encode_rubin`'s ``fill_defaults`` gives it. The photometry is the
simulator's, bit for bit: ``psfFlux``/``psfFluxErr`` are Avro floats, like the
simulator's float32 nJy, and ``midpointMjdTai`` a double, so a decoded packet and
the simulated curve cut at the alert encode to identical model input.

Simplifications: positions carry no astrometric scatter; ``visit`` is derived from
the exposure's time and band (`visit_ids`), not Rubin's day_obs/seq_num; every
object has its own cadence, so alerts do not come in visit-sized bursts (replay's
``--visit-size`` emulates those); the 2026 stream's repeated previous detection is
not reproduced.
"""
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from models.bands import BAND_CODE, BAND_NAMES
from stream.decode import encode_rubin, rubin_schema, rubin_versions
from training.simulate import POINT_ID_STRIDE, SimulatedSet

# Rubin alerts carry 12 months of previous detections and forced photometry (the DPDD,
# LSE-163; SCIENCE.md section 1): points with alert time - HISTORY_DAYS <= mjd < alert time.
HISTORY_DAYS = 365.0
# Forced twin of a detection: its diaSourceId with this bit set (bit 62: the id stays a
# positive Avro long). Needs source ids below 2**62, i.e. object ids below 2**62 / POINT_ID_STRIDE.
FORCED_TWIN_ID_BIT = 1 << 62
# First object id for simulated alert streams: Rubin's diaObjectIds are large positive
# 64-bit integers, and 0 means "no object" to the decoders.
FIRST_OBJECT_ID = 10**12
# Visit ids count seconds of MJD TAI: one exposure per band per second at most. An
# object's visits are >= 15 min apart (training.sim_survey), so they never collide.
VISIT_TIME_RESOLUTION_S = 1.0
# Time from mid-exposure to a source's processing (timeProcessedMjdTai, schema 9.0 and
# later), days: Rubin sends 98 % of a visit's alerts within 60 s (SCIENCE.md section 1).
PROCESSING_LATENCY_DAYS = 60.0 / 86400.0

_SECONDS_PER_DAY = 86400.0
_LSST_CODES = np.array([BAND_CODE[f"lsst-{letter}"] for letter in "ugrizy"], dtype=np.int8)


@dataclass(frozen=True)
class SimAlert:
    """One simulated Rubin alert packet and what it is about.

    Attributes
    ----------
    key : bytes
        Kafka key: the object id as UTF-8 digits (what `stream.replay` keys by).
    value : bytes
        The packet: Confluent wire format (magic 0, schema id, schemaless Avro).
    alert_mjd_tai : float
        Mid-exposure time of the triggering detection, MJD TAI.
    object_id : int
        ``diaObjectId`` (the simulated object id).
    class_id : int
        ELAsTiCC2 class id of the object (the label).
    alert_id : int
        ``diaSourceId`` of the triggering detection (``alertId`` in schema 7).
    """

    key: bytes
    value: bytes
    alert_mjd_tai: float
    object_id: int
    class_id: int
    alert_id: int


def visit_ids(mjd_tai: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Visit id of each exposure: its time in units of `VISIT_TIME_RESOLUTION_S` since MJD 0, then the band digit.

    Points at the same time (to the resolution) and band share a visit, so a forced
    measurement and a detection on one exposure are recognised as such.

    Parameters
    ----------
    mjd_tai : (P,) float64
        Mid-exposure time, MJD TAI.
    band : (P,) int8
        Band code (`models.bands`, 0..9).

    Returns
    -------
    (P,) int64
        Positive visit ids, ``round(mjd_tai * 86400 s / resolution) * 10 + band``.

    >>> visit_ids(np.array([61000.5, 61000.5, 61000.6]), np.array([2, 2, 3], dtype=np.int8)).tolist()
    [52704432002, 52704432002, 52704518403]
    """
    ticks = np.rint(mjd_tai * (_SECONDS_PER_DAY / VISIT_TIME_RESOLUTION_S)).astype(np.int64)
    return ticks * 10 + band.astype(np.int64)


class RubinAlertStream:
    """The Rubin alerts of a simulated LSST set, in alert-time order; iterate to encode them.

    Packets are encoded lazily, one per step, so a long stream can be written out
    without holding it in memory; ``len()`` gives the number of alerts.

    Parameters
    ----------
    simset : SimulatedSet
        LSST photometry with positive object ids below ``2**62 / POINT_ID_STRIDE``
        (simulate with ``first_object_id=FIRST_OBJECT_ID``).
    version : str, optional
        Rubin schema version (``"M.m"``, one of `stream.decode.rubin_versions`);
        default the latest.
    start_mjd_tai, end_mjd_tai : float, optional
        Keep the alerts triggered in ``[start_mjd_tai, end_mjd_tai)``, MJD TAI (a
        night, a season); default all. Their packets still carry earlier history.

    Raises
    ------
    ValueError
        For a ZTF set, or object ids that are not positive or too large.

    Examples
    --------
    >>> from training.simulate import simulate
    >>> sims = simulate(2, np.random.default_rng(0), first_object_id=FIRST_OBJECT_ID)
    >>> stream = RubinAlertStream(sims, version="10.0")
    >>> len(stream) == int(sims.is_detection.sum())
    True
    >>> first = next(iter(stream))
    >>> first.value[:5] == bytes([0, 0, 0, 3, 232])  # magic byte, schema id 1000
    True
    """

    def __init__(self, simset: SimulatedSet, version: str | None = None,
                 start_mjd_tai: float | None = None, end_mjd_tai: float | None = None):
        if simset.survey != "lsst":
            raise ValueError(f"Rubin alerts need an LSST set, got survey {simset.survey!r}")
        if len(simset) and (simset.object_id.min() <= 0
                            or simset.object_id.max() >= FORCED_TWIN_ID_BIT // POINT_ID_STRIDE):
            raise ValueError(f"object ids must lie in 1..{FORCED_TWIN_ID_BIT // POINT_ID_STRIDE - 1} "
                             f"(got {simset.object_id.min()}..{simset.object_id.max()}); "
                             "simulate with first_object_id=FIRST_OBJECT_ID")
        if not np.isin(simset.band, _LSST_CODES).all():
            raise ValueError("the set has points outside the LSST bands u..y")
        self.simset = simset
        self.version = rubin_versions()[-1] if version is None else version
        self._fields = _field_names(self.version)
        self.points = _trigger_points(simset, start_mjd_tai, end_mjd_tai)

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[SimAlert]:
        sims, fields = self.simset, self._fields
        obj = np.repeat(np.arange(len(sims)), np.diff(sims.offsets))  # (P,) object index of each point
        # Per-point Avro values, (P,) each; an alert slices them.
        columns = {
            "diaObjectId": sims.object_id[obj],
            "ra": sims.ra_deg[obj],
            "dec": sims.dec_deg[obj],
            "visit": visit_ids(sims.mjd_tai, sims.band),
            "midpointMjdTai": sims.mjd_tai,
            "band": np.array([name.removeprefix("lsst-") for name in BAND_NAMES], dtype=object)[sims.band],
            "psfFlux": sims.flux_njy,
            "psfFluxErr": sims.flux_err_njy,
            "scienceFlux": sims.template_flux_njy[obj, sims.band] + sims.flux_njy,  # template + difference
            "timeProcessedMjdTai": sims.mjd_tai + PROCESSING_LATENCY_DAYS,
        }
        sources = _Columns({"diaSourceId": sims.source_id, **columns}, fields["diaSource"])
        forced = _Columns({"diaForcedSourceId": np.where(sims.is_detection, sims.source_id | FORCED_TWIN_ID_BIT,
                                                         sims.source_id), **columns}, fields["diaForcedSource"])
        n_detections = np.cumsum(sims.is_detection) - np.repeat(  # (P,) detections so far, per object
            np.concatenate([[0], np.cumsum(sims.is_detection)])[sims.offsets[:-1]], np.diff(sims.offsets))
        id_field = "alertId" if "alertId" in fields["alert"] else "diaSourceId"
        for p in self.points.tolist():
            i = int(obj[p])
            t = float(sims.mjd_tai[p])
            start = sims.offsets[i]
            first = start + int(np.searchsorted(sims.mjd_tai[start:p], t - HISTORY_DAYS, side="left"))
            earlier = np.arange(first, p)  # the object's points in the window, all before the alert
            object_id, alert_id = int(sims.object_id[i]), int(sims.source_id[p])
            dia_object = {"diaObjectId": object_id, "ra": float(sims.ra_deg[i]), "dec": float(sims.dec_deg[i]),
                          "nDiaSources": int(n_detections[p]), "validityStartMjdTai": t}
            record = {
                id_field: alert_id,
                "diaSource": sources.records(np.array([p]))[0],
                "prvDiaSources": sources.records(earlier[sims.is_detection[first:p]]),
                "prvDiaForcedSources": forced.records(earlier),
                "diaObject": {k: v for k, v in dia_object.items() if k in fields["diaObject"]},
            }
            yield SimAlert(key=str(object_id).encode(), value=encode_rubin(record, self.version, fill_defaults=True),
                           alert_mjd_tai=t, object_id=object_id, class_id=int(sims.class_id[i]),
                           alert_id=alert_id)


def rubin_alert_stream(simset: SimulatedSet, version: str | None = None,
                       start_mjd_tai: float | None = None, end_mjd_tai: float | None = None) -> list[SimAlert]:
    """All Rubin alerts of a simulated LSST set, encoded, sorted by alert time.

    Parameters and errors as `RubinAlertStream`, which this lists.

    Returns
    -------
    list of SimAlert
        One per detection triggered in ``[start_mjd_tai, end_mjd_tai)``, by
        ``(alert_mjd_tai, alert_id)``.

    >>> from training.simulate import simulate
    >>> sims = simulate(1, np.random.default_rng(1), first_object_id=FIRST_OBJECT_ID)
    >>> alerts = rubin_alert_stream(sims, "10.0")
    >>> alerts[0].key, alerts[0].alert_id == int(sims.source_id[sims.is_detection][0])
    (b'1000000000000', True)
    """
    return list(RubinAlertStream(simset, version, start_mjd_tai, end_mjd_tai))


def _trigger_points(simset: SimulatedSet, start_mjd_tai: float | None, end_mjd_tai: float | None) -> np.ndarray:
    """Flat indices of the detections triggering an alert in the time range, by (time, source id)."""
    mjd = simset.mjd_tai
    keep = simset.is_detection.copy()
    if start_mjd_tai is not None:
        keep &= mjd >= start_mjd_tai
    if end_mjd_tai is not None:
        keep &= mjd < end_mjd_tai
    points = np.flatnonzero(keep)
    return points[np.lexsort((simset.source_id[points], mjd[points]))]


def _field_names(version: str) -> dict[str, set[str]]:
    """Field names of the alert record and of its diaSource, diaForcedSource and diaObject records."""
    schema = rubin_schema(version)
    prefix = schema["name"].rsplit(".", 1)[0]  # e.g. "lsst.v10_0"
    named = schema["__named_schemas"]
    return {"alert": {f["name"] for f in schema["fields"]},
            **{kind: {f["name"] for f in named[f"{prefix}.{kind}"]["fields"]}
               for kind in ("diaSource", "diaForcedSource", "diaObject")}}


class _Columns:
    """Per-point values of one record kind, (P,) arrays keyed by the schema fields they fill."""

    def __init__(self, columns: dict[str, np.ndarray], fields: set[str]):
        self.columns = {name: values for name, values in columns.items() if name in fields}

    def records(self, rows: np.ndarray) -> list[dict]:
        """One partial record per row (flat point index) of `rows`; `encode_rubin` fills the rest."""
        names = list(self.columns)
        return [dict(zip(names, values)) for values in zip(*(self.columns[n][rows].tolist() for n in names))]

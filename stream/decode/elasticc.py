"""LSST DESC ELAsTiCC alerts (schema ``elasticc.v0_9_1.alert``), schemaless Avro.

The schema files in ``schemas/`` are copies of ``elasticc.v0_9_1.{alert,
diaSource,diaForcedSource,diaObject}.avsc`` from the LSSTDESC/elasticc
repository (commit 818ae71e), as kept in ``data/elasticc/schema``.
"""
import functools
from pathlib import Path

import numpy as np
from fastavro.schema import load_schema_ordered

from models.bands import BAND_CODE
from models.context import CONTEXT_INDEX, context_vector, missing_context
from stream.alert import DecodedAlert
from stream.decode._avro import (
    WIRE_HEADER, fill_defaults as _fill_defaults, raising_bad_packet, read_record, split_wire_format,
    write_record,
)
from stream.decode._points import Points, finite_float, light_curve, required
from stream.decode.physical import validated
from stream.errors import BadPacket

ELASTICC_FIELDS = {"mjd_tai": "midPointTai", "flux_njy": "psFlux", "flux_err_njy": "psFluxErr",
                   "ra_deg": "ra", "dec_deg": "decl"}  # named in validation errors

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SCHEMA_NAME = "elasticc.v0_9_1"
# Dependency order: the alert refers to the other three by name.
SCHEMA_PARTS = ("diaSource", "diaForcedSource", "diaObject", "alert")
# ELAsTiCC's filterName is u, g, r, i, z, Y; accept lower-case y too.
BAND_CODES = {**{letter: BAND_CODE[f"lsst-{letter}"] for letter in "ugriz"},
              "Y": BAND_CODE["lsst-y"], "y": BAND_CODE["lsst-y"]}


@functools.cache
def elasticc_schema() -> dict:
    """The parsed ``elasticc.v0_9_1.alert`` schema, parsed once and cached."""
    return load_schema_ordered([str(SCHEMA_DIR / f"{SCHEMA_NAME}.{part}.avsc") for part in SCHEMA_PARTS])


@raising_bad_packet
def decode_elasticc(payload: bytes, *, wire_format: bool = False) -> DecodedAlert:
    """Decode one ELAsTiCC alert.

    Points: ``diaSource`` and ``prvDiaSources`` are detections (id
    ``diaSourceId``); ``prvDiaForcedSources`` are not (id ``diaForcedSourceId``).
    Times are ``midPointTai`` (MJD TAI), fluxes ``psFlux``/``psFluxErr`` (nJy,
    zero point 31.4 AB mag), bands ``filterName`` u..Y mapped to lsst-u..lsst-y.
    Repeated source ids keep their first occurrence.

    As for Rubin, forced photometry on the epoch of a detection in the same
    packet is dropped. The schema has no visit id, so a forced point whose
    ``midPointTai`` and ``filterName`` equal a detection's is taken to be on its
    visit.

    The object id is ``diaSource.diaObjectId``, else ``diaObject.diaObjectId``;
    the alert id is ``alertId``.

    Parameters
    ----------
    payload : bytes
        Schemaless Avro, or with `wire_format` the Confluent wire format.
    wire_format : bool
        Expect a Confluent header (magic byte 0, 4-byte schema id). Any schema id
        is accepted: ELAsTiCC's ids were assigned by its registry, not by version.

    Returns
    -------
    DecodedAlert
        ``survey="elasticc"``, ``schema="elasticc.v0_9_1.alert"``.

    Raises
    ------
    BadPacket
        For anything undecodable, naming the problem, e.g.
        ``"prvDiaForcedSources[2].psFluxErr is not positive (0.0)"``.

    >>> source = {"diaSourceId": 1, "diaObjectId": 2, "midPointTai": 60000.5, "filterName": "Y",
    ...           "ra": 1.0, "decl": 2.0, "psFlux": 150.0, "psFluxErr": 10.0, "snr": 15.0}
    >>> alert = decode_elasticc(encode_elasticc({"alertId": 9, "diaSource": source}))
    >>> alert.alert_id, alert.light_curve.band.tolist()  # lsst-y
    (9, [5])
    """
    schema = elasticc_schema()
    if wire_format:
        split_wire_format(payload)
        record = read_record(payload, schema, offset=WIRE_HEADER.size)
    else:
        record = read_record(payload, schema)
    source = record["diaSource"]
    detections = Points.one("diaSource", source) + Points.many("prvDiaSources", record["prvDiaSources"])
    forced = Points.many("prvDiaForcedSources", record["prvDiaForcedSources"])
    detected_epochs = set(zip(detections.column("midPointTai"), detections.column("filterName")))
    forced = forced.select([epoch not in detected_epochs for epoch in
                            zip(forced.column("midPointTai"), forced.column("filterName"))])
    return validated(DecodedAlert(
        survey="elasticc",
        schema=schema["name"],
        alert_id=record["alertId"],
        source_id=required(source, "diaSourceId", "diaSource"),
        object_id=_object_id(source, record["diaObject"]),
        ra_deg=finite_float(source, "ra", "diaSource"),
        dec_deg=finite_float(source, "decl", "diaSource"),
        light_curve=light_curve(_columns(detections, "diaSourceId", True),
                                _columns(forced, "diaForcedSourceId", False)),
        context=host_context(record["diaObject"]),
    ), "diaSource", ELASTICC_FIELDS)


def encode_elasticc(record: dict, *, schema_id: int | None = None, fill_defaults: bool = False) -> bytes:
    """Serialise an ELAsTiCC alert record, the inverse of `decode_elasticc`.

    Parameters
    ----------
    record : dict
        An ``elasticc.v0_9_1.alert`` record.
    schema_id : int, optional
        When given, prefix the Confluent header with this schema id.
    fill_defaults : bool
        Complete fields the record lacks with the schema's defaults or zeros of
        their type.

    Returns
    -------
    bytes
        Schemaless Avro, or the Confluent wire format when `schema_id` is given.
    """
    schema = elasticc_schema()
    if fill_defaults:
        record = _fill_defaults(record, schema)
    body = write_record(record, schema)
    return body if schema_id is None else WIRE_HEADER.pack(0, schema_id) + body


def _columns(points: Points, id_field: str, is_detection: bool) -> tuple:
    return (points.integers(id_field), points.numbers("midPointTai"), points.codes("filterName", BAND_CODES),
            points.numbers("psFlux"), points.numbers("psFluxErr", positive=True),
            np.full(len(points), is_detection))


def _host_value(dia_object: dict, name: str, low: float, high: float) -> float | None:
    """``diaObject[name]`` when it is a number in [low, high), else None: SNANA, which made ELAsTiCC, writes
    -9 (and -99) for "no host" and 99 or 999 for an unmeasured magnitude."""
    value = dia_object.get(name)
    return float(value) if isinstance(value, (int, float)) and low <= value < high else None


def host_context(dia_object: dict | None) -> np.ndarray:
    """(N_CONTEXT,) float64 alert context of an ELAsTiCC ``diaObject``: its likeliest host galaxy's distance
    (``hostgal_snsep``, arcsec), redshift (``hostgal_zspec`` when measured, else ``hostgal_zphot``) and r
    magnitude (``hostgal_mag_r``, AB); NaN where there is no host or no value.

    >>> c = host_context({"hostgal_snsep": 0.8, "hostgal_zspec": 0.0, "hostgal_zphot": 0.31, "hostgal_mag_r": 21.5})
    >>> [round(float(c[CONTEXT_INDEX[f]]), 2) for f in ("host_separation_arcsec", "host_redshift", "host_mag_r_ab")]
    [0.8, 0.31, 21.5]
    >>> bool(np.isnan(host_context({"hostgal_snsep": -9.0})[CONTEXT_INDEX["host_separation_arcsec"]]))
    True
    """
    if dia_object is None:
        return missing_context()
    redshifts = (_host_value(dia_object, name, 0.0, 10.0) for name in ("hostgal_zspec", "hostgal_zphot"))
    return context_vector(
        host_separation_arcsec=_host_value(dia_object, "hostgal_snsep", 0.0, np.inf),
        host_redshift=next((z for z in redshifts if z), None),  # 0 is no measurement, as no galaxy is at z = 0
        host_mag_r_ab=_host_value(dia_object, "hostgal_mag_r", 0.0, 40.0))


def _object_id(source: dict, dia_object: dict | None) -> str:
    if source["diaObjectId"] is not None:
        return str(source["diaObjectId"])
    if dia_object is not None:
        return str(dia_object["diaObjectId"])
    raise BadPacket("diaSource.diaObjectId and diaObject are both null: no object id")

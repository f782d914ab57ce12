"""Rubin/LSST alerts (``lsst.v*`` schemas, 7.0 and later) in the Confluent wire format.

A message is one magic byte (0), the schema id as a big-endian 32-bit integer
and the alert as schemaless Avro. The id encodes the schema version:
``lsst.vM_m`` has id ``int(f"{M}{m:02d}")`` (701 = lsst.v7_1, 1000 =
lsst.v10_0), as `lsst.alert.packet.Schema.get_schema_id` computes it. The
schemas are those shipped by the installed ``lsst-alert-packet``; each is
parsed once, on first use.
"""
import functools
from pathlib import Path

import numpy as np
from fastavro.schema import load_schema
from lsst.alert.packet.schema import get_schema_root

from models.bands import BAND_CODE
from models.context import CONTEXT_INDEX, N_CONTEXT
from stream.alert import DecodedAlert
from stream.decode._avro import (
    WIRE_HEADER, coerced, fill_defaults as _fill_defaults, raising_bad_packet, read_record, split_wire_format,
    write_record,
)
from stream.decode._points import Points, finite_float, light_curve, required
from stream.decode.physical import validated
from stream.errors import BadPacket, ConfigError

RUBIN_FIELDS = {"mjd_tai": "midpointMjdTai", "flux_njy": "psfFlux", "flux_err_njy": "psfFluxErr",
                "ra_deg": "ra", "dec_deg": "dec"}  # named in validation errors

FIRST_SUPPORTED_MAJOR = 7
BAND_CODES = {letter: BAND_CODE[f"lsst-{letter}"] for letter in "ugrizy"}


def schema_id(version: str) -> int:
    """Schema-registry id of Rubin schema `version`.

    >>> schema_id("7.1"), schema_id("10.0"), schema_id("11.1")
    (701, 1000, 1101)
    """
    major, minor = _parse_version(version)
    return int(f"{major}{minor:02d}")


def rubin_versions() -> tuple[str, ...]:
    """The supported schema versions ("M.m"), oldest first: those of lsst-alert-packet from 7.0 on."""
    return tuple(f"{i // 100}.{i % 100}" for i in _schema_files())


def rubin_schema(version: str) -> dict:
    """The parsed ``lsst.vM_m.alert`` schema of `version` (e.g. ``"10.0"``), parsed once and cached.

    Raises
    ------
    ConfigError
        For a version that is malformed or not shipped by lsst-alert-packet.
    """
    sid = schema_id(version)
    if sid not in _schema_files():
        raise ConfigError(f"unknown Rubin schema version {version!r} (known: {', '.join(rubin_versions())})")
    return _parsed_schema(sid)


@raising_bad_packet
def decode_rubin(payload: bytes, *, version: str | None = None, registry=None) -> DecodedAlert:
    """Decode one Rubin alert.

    Points: ``diaSource`` and ``prvDiaSources`` are detections (id
    ``diaSourceId``); ``prvDiaForcedSources`` are not (id
    ``diaForcedSourceId``). Times are ``midpointMjdTai`` (MJD TAI), fluxes
    ``psfFlux``/``psfFluxErr`` (difference-image PSF flux, nJy), bands ``u``..``y``
    mapped to ``lsst-u``..``lsst-y``. Repeated source ids keep their first
    occurrence (the 2026 stream can repeat the last previous detection).

    Forced photometry on the ``visit`` of a detection in the same packet is
    dropped: it measures the same image at nearly the same position, so it
    would give the model a second, nearly identical token for one visit. The
    detection is kept; a forced point that is dropped is not checked.

    The object id is ``diaSource.diaObjectId``; a solar-system source has none
    (null, or 0 in the 2025 LSSTCam alerts) and is keyed ``ss`` + ``diaSource.ssObjectId``
    (`object_key`).
    The alert id is ``alertId`` (schema 7) or the top-level ``diaSourceId`` (8 and
    later).

    Parameters
    ----------
    payload : bytes
        Confluent wire format, or (when `version` is given) schemaless Avro.
    version : str, optional
        Schema version such as ``"10.0"`` for schemaless payloads.
    registry : stream.decode.registry.RegistrySchemas, optional
        Where the writer schema of an id that lsst-alert-packet lacks is looked up.

    Returns
    -------
    DecodedAlert
        ``survey="rubin"``, ``schema`` e.g. ``"lsst.v10_0.alert"``.

    Raises
    ------
    BadPacket
        For anything undecodable, naming the problem: ``"unknown Rubin schema
        id 4242 (known: 700, ...)"``, ``"truncated or corrupt lsst.v10_0.alert
        record (...)"``,
        ``"prvDiaSources[3].psfFlux is NaN"``, ``"diaSource.psfFluxErr is not
        positive (...)"``.
    ConfigError
        For an unknown `version`.

    >>> source = {"diaSourceId": 1, "diaObjectId": 2, "visit": 3, "midpointMjdTai": 60000.5,
    ...           "band": "r", "psfFlux": 150.0, "psfFluxErr": 10.0, "ra": 1.0, "dec": 2.0}
    >>> payload = encode_rubin({"diaSourceId": 1, "diaSource": source}, "10.0", fill_defaults=True)
    >>> alert = decode_rubin(payload)
    >>> alert.schema, alert.object_id, alert.light_curve.flux_njy.tolist()
    ('lsst.v10_0.alert', '2', [150.0])
    """
    if version is None:
        sid = split_wire_format(payload)
        if sid in _schema_files():
            schema = _parsed_schema(sid)
        elif registry is not None:
            schema = registry.schema(sid)
        else:
            known = ", ".join(str(i) for i in _schema_files())
            raise BadPacket(f"unknown Rubin schema id {sid} (known: {known}; no schema_registry.url to ask)")
        record = read_record(payload, schema, offset=WIRE_HEADER.size)
    else:
        schema = rubin_schema(version)
        record = read_record(payload, schema)
    return _decoded(record, schema["name"])


def encode_rubin(record: dict, version: str, *, wire_format: bool = True,
                 fill_defaults: bool = False) -> bytes:
    """Serialise a Rubin alert record, the inverse of `decode_rubin`.

    Parameters
    ----------
    record : dict
        An ``lsst.vM_m.alert`` record.
    version : str
        Schema version, e.g. ``"10.0"``.
    wire_format : bool
        Prefix the Confluent header (magic byte 0 and the schema id); else
        return schemaless Avro.
    fill_defaults : bool
        Complete fields the record lacks with the schema's defaults or zeros
        of their type (see `stream.decode._avro.fill_defaults`), so a record
        can carry only the photometry fields.

    Returns
    -------
    bytes
        The message.
    """
    schema = rubin_schema(version)
    if fill_defaults:
        record = _fill_defaults(record, schema)
    body = write_record(record, schema)
    return WIRE_HEADER.pack(0, schema_id(version)) + body if wire_format else body


def rubin_records_from_parquet(path, version: str | None = None) -> tuple[list[dict], str]:
    """Rubin alerts stored one per Parquet row (e.g. by Fink), as records ready for `encode_rubin`.

    Values are coerced to the schema's types (Parquet may hold long ids as
    doubles) and missing fields filled (see `encode_rubin`'s `fill_defaults`);
    columns that are not schema fields (``brokerIngestMjd``, ...) are dropped.

    Parameters
    ----------
    path : str or Path
        The Parquet file; nested columns ``diaSource``, ``prvDiaSources``, ...
    version : str, optional
        Schema version such as ``"10.0"``; by default read from the
        ``lsst_schema_version`` column (e.g. ``"lsst.v10_0"``), which must hold
        one value.

    Returns
    -------
    records : list of dict
        One alert record per row.
    version : str
        The schema version used.

    Raises
    ------
    ConfigError
        When no version is given and the file does not name exactly one.
    """
    import pyarrow.parquet as pq  # only replay and tests read Parquet

    table = pq.read_table(path)
    if version is None:
        if "lsst_schema_version" not in table.column_names:
            raise ConfigError(f"{path}: no lsst_schema_version column; give the schema version")
        names = set(table.column("lsst_schema_version").to_pylist())
        if len(names) != 1 or not str(next(iter(names))).startswith("lsst.v"):
            raise ConfigError(
                f"{path}: lsst_schema_version holds {sorted(map(str, names))}, expected one 'lsst.vM_m'")
        version = names.pop().removeprefix("lsst.v").replace("_", ".")
    schema = rubin_schema(version)
    return [_fill_defaults(coerced(row, schema), schema) for row in table.to_pylist()], version


def _decoded(record: dict, schema_name: str) -> DecodedAlert:
    source = record["diaSource"]
    detections = Points.one("diaSource", source) + Points.many("prvDiaSources", record["prvDiaSources"])
    forced = Points.many("prvDiaForcedSources", record["prvDiaForcedSources"])
    detected_visits = set(detections.column("visit"))
    forced = forced.select([visit not in detected_visits for visit in forced.column("visit")])
    return validated(DecodedAlert(
        survey="rubin",
        schema=schema_name,
        alert_id=record["alertId"] if "alertId" in record else record["diaSourceId"],
        source_id=required(source, "diaSourceId", "diaSource"),
        object_id=_object_id(source),
        ra_deg=finite_float(source, "ra", "diaSource"),
        dec_deg=finite_float(source, "dec", "diaSource"),
        light_curve=light_curve(_columns(detections, "diaSourceId", True),
                                _columns(forced, "diaForcedSourceId", False)),
        context=rubin_context(not source.get("diaObjectId"), source.get("reliability"),
                              *_object_history(record.get("diaObject"))),
    ), "diaSource", RUBIN_FIELDS)


def _object_history(dia_object: dict | None) -> tuple:
    """(first detection MJD TAI, detections) of the alert's diaObject; None where it does not say."""
    if not dia_object:
        return None, None
    return dia_object.get("firstDiaSourceMjdTai"), dia_object.get("nDiaSources")


def rubin_context(is_solar_system: bool, reliability: float | None = None,
                  first_detection_mjd_tai: float | None = None, n_detections: int | None = None) -> np.ndarray:
    """The alert context (`models.context`) of a Rubin alert.

    A source with an ``ssObjectId`` and no diaObject is a known solar-system object (distance 0);
    any other is not (inf). ``diaSource.reliability`` is the real/bogus score;
    ``diaObject.firstDiaSourceMjdTai`` and ``diaObject.nDiaSources`` (schemas 8.0 on) the source's
    history. None (or NaN) where the packet does not say.
    """
    values = (np.nan if v is None else float(v) for v in (reliability, first_detection_mjd_tai, n_detections))
    return rubin_contexts(np.array([is_solar_system]), *(np.array([v]) for v in values))[0]


def rubin_contexts(is_solar_system: np.ndarray, reliability: np.ndarray, first_detection_mjd_tai: np.ndarray,
                   n_detections: np.ndarray) -> np.ndarray:
    """(B, N_CONTEXT) float64: `rubin_context` of B alerts at once, from (B,) columns (NaN: not said)."""
    context = np.full((len(is_solar_system), N_CONTEXT), np.nan)
    context[:, CONTEXT_INDEX["ss_distance_arcsec"]] = np.where(is_solar_system, 0.0, np.inf)
    context[:, CONTEXT_INDEX["real_bogus"]] = reliability
    context[:, CONTEXT_INDEX["first_detection_mjd_tai"]] = first_detection_mjd_tai
    context[:, CONTEXT_INDEX["n_detections_history"]] = n_detections
    return context


def _columns(points: Points, id_field: str, is_detection: bool) -> tuple:
    return (points.integers(id_field), points.numbers("midpointMjdTai"), points.codes("band", BAND_CODES),
            points.numbers("psfFlux"), points.numbers("psfFluxErr", positive=True),
            np.full(len(points), is_detection))


SOLAR_SYSTEM_KEY_PREFIX = "ss"


def object_key(object_id: int, is_solar_system: bool) -> str:
    """The object's text key: the diaObjectId in decimal, or ``ss`` + the ssObjectId.

    diaObjectIds and ssObjectIds are numbered independently, so a bare ssObjectId
    could name some diaObject's light curve in Redis and in Kafka keys.

    >>> object_key(1234, False), object_key(1234, True)
    ('1234', 'ss1234')
    """
    return f"{SOLAR_SYSTEM_KEY_PREFIX}{object_id}" if is_solar_system else str(object_id)


def parse_object_key(key: str) -> tuple[int, bool]:
    """Inverse of `object_key`: ``(object_id, is_solar_system)``.

    >>> parse_object_key("ss1234"), parse_object_key("-7")
    ((1234, True), (-7, False))
    """
    if key.startswith(SOLAR_SYSTEM_KEY_PREFIX):
        return int(key[len(SOLAR_SYSTEM_KEY_PREFIX):]), True
    return int(key), False


def _object_id(source: dict) -> str:
    if source.get("diaObjectId"):  # None or 0: no diaObject
        return object_key(source["diaObjectId"], False)
    if source.get("ssObjectId"):
        return object_key(source["ssObjectId"], True)
    raise BadPacket("diaSource.diaObjectId and diaSource.ssObjectId are both null or 0: no object id")


def _parse_version(version: str) -> tuple[int, int]:
    try:
        major, minor = (int(part) for part in version.split("."))
    except (AttributeError, ValueError):
        raise ConfigError(f"Rubin schema version {version!r} is not of the form 'M.m', e.g. '10.0'") from None
    return major, minor


@functools.cache
def _schema_files() -> dict[int, Path]:
    """Schema id -> path of ``lsst.vM_m.alert.avsc`` for every shipped version from 7.0 on, by id."""
    root = Path(str(get_schema_root()))
    found = {}
    for path in root.glob("*/*/lsst.v*_*.alert.avsc"):
        major, minor = path.parent.parent.name, path.parent.name
        if major.isdigit() and minor.isdigit() and int(major) >= FIRST_SUPPORTED_MAJOR:
            found[schema_id(f"{major}.{minor}")] = path
    return dict(sorted(found.items()))


@functools.cache
def _parsed_schema(sid: int) -> dict:
    return load_schema(str(_schema_files()[sid]))

"""Avro plumbing shared by the decoders: the Confluent wire format, schemaless records, defaults.

The Confluent wire format is one magic byte (0), the writer schema's id as a
big-endian 32-bit integer, then the record as schemaless Avro.
"""
import functools
import io
import math
import re
import struct
import zlib

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException

from stream.errors import BadPacket

MAGIC_BYTE = 0
WIRE_HEADER = struct.Struct(">BI")  # magic byte, schema id

# What reading untrusted bytes can raise: fastavro (EOFError on truncation,
# ValueError/UnicodeDecodeError/OverflowError on corrupt values, schema errors
# for a corrupt embedded schema), struct and zlib, and our own field access.
# Decoders turn each of them into a BadPacket.
DECODE_ERRORS = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError, OverflowError,
    RecursionError, struct.error, zlib.error, SchemaParseException, SchemaResolutionError,
)

_PRIMITIVE_DEFAULTS = {
    "null": None, "boolean": False, "int": 0, "long": 0, "float": 0.0, "double": 0.0,
    "string": "", "bytes": b"",
}



_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _cause(err: Exception) -> str:
    """``Type: message`` of a library error, without object addresses (``<... at 0x7f..>``),
    so that the same bad packet always gets the same reason."""
    return f"{type(err).__name__}: {_ADDRESS.sub('', str(err))}"

def raising_bad_packet(decode):
    """Wrap a decoder so that any error in `DECODE_ERRORS` leaves it as a `BadPacket`.

    The specific checks inside the decoders name the field at fault; this is
    the backstop that keeps library exceptions from reaching the stream loop.
    """
    @functools.wraps(decode)
    def wrapper(payload, **opts):
        if not payload:
            raise BadPacket("empty message (no bytes)")
        try:
            return decode(payload, **opts)
        except DECODE_ERRORS as err:
            raise BadPacket(f"undecodable packet: {_cause(err)}") from err

    return wrapper


def split_wire_format(payload: bytes) -> int:
    """Check the Confluent wire-format header and return its schema id.

    The Avro body starts at byte ``WIRE_HEADER.size`` (5).

    Raises
    ------
    BadPacket
        ``"truncated Confluent wire-format header: ..."`` for fewer than 5
        bytes, ``"wrong magic byte 0x.. ..."`` when byte 0 is not 0.
    """
    if len(payload) < WIRE_HEADER.size:
        raise BadPacket(
            f"truncated Confluent wire-format header: {len(payload)} byte(s), need {WIRE_HEADER.size}")
    magic, schema_id = WIRE_HEADER.unpack_from(payload)
    if magic != MAGIC_BYTE:
        raise BadPacket(f"wrong magic byte 0x{magic:02x} (the Confluent wire format starts with 0x00)")
    return schema_id


def read_record(payload: bytes, schema: dict, offset: int = 0) -> dict:
    """Read one schemaless Avro record that must fill ``payload[offset:]`` exactly.

    Parameters
    ----------
    payload : bytes
        The message.
    schema : dict
        Parsed writer schema (from `fastavro.schema.load_schema`).
    offset : int
        Byte where the record starts (5 after a Confluent header).

    Raises
    ------
    BadPacket
        ``"truncated or corrupt <schema> record (<n> byte(s)): <cause>"`` when
        the bytes end early or hold an undecodable value, and ``"<n> unread
        byte(s) after the <schema> record"`` when bytes are left over.
    """
    name = schema["name"]
    buffer = io.BytesIO(payload)
    buffer.seek(offset)
    try:
        record = fastavro.schemaless_reader(buffer, schema)
    except DECODE_ERRORS as err:  # EOFError, or IndexError/ValueError on a cut or corrupt value
        raise BadPacket(f"truncated or corrupt {name} record ({len(payload) - offset} byte(s)): "
                        f"{_cause(err)}") from err
    left = len(payload) - buffer.tell()
    if left:
        raise BadPacket(f"{left} unread byte(s) after the {name} record")
    return record


def write_record(record: dict, schema: dict) -> bytes:
    """Serialise `record` as schemaless Avro with the parsed `schema`."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record)
    return buffer.getvalue()


def coerced(record: dict, schema: dict) -> dict:
    """Return a copy of `record` with numbers turned to the schema's integer types.

    Columnar stores (Parquet via pandas or Spark) widen an int/long column to
    double when it has nulls; a finite double in an int/long field becomes an
    int, a NaN there becomes null. Other values are kept as they are; keys that
    are not fields of the schema are dropped.

    >>> schema = fastavro.parse_schema({"type": "record", "name": "o", "fields": [
    ...     {"name": "id", "type": ["null", "long"]}, {"name": "ra", "type": "double"}]})
    >>> coerced({"id": 12.0, "ra": 1.5, "extra": 1}, schema)
    {'id': 12, 'ra': 1.5}
    """
    return _coerced(record, schema, schema.get("__named_schemas", {}))


def _coerced(value, schema, named: dict):
    if value is None:
        return None
    if isinstance(schema, str):
        if schema in named:
            return _coerced(value, named[schema], named)
        if schema in ("int", "long") and isinstance(value, float):
            return int(value) if math.isfinite(value) else None
        return value
    if isinstance(schema, list):  # a union: nullable X in every schema we read
        branches = [branch for branch in schema if branch != "null"]
        return _coerced(value, branches[0], named) if len(branches) == 1 else value
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: _coerced(value.get(f["name"]), f["type"], named)
                for f in schema["fields"] if f["name"] in value}
    if kind == "array":
        return [_coerced(item, schema["items"], named) for item in value]
    return _coerced(value, kind, named) if isinstance(kind, str) else value


def fill_defaults(record: dict, schema: dict) -> dict:
    """Return a copy of `record` with every field the schema requires filled in.

    A field that is absent, or null where the schema does not allow null, gets
    the schema's default if it has one, else a value of its type: 0, 0.0,
    False, "", b"", [], {}, the first enum symbol, or a record filled the same
    way. Nested records and arrays of records are completed recursively.

    Parameters
    ----------
    record : dict
        A partial record, e.g. only the photometry fields of each diaSource.
    schema : dict
        The parsed record schema (with fastavro's ``__named_schemas``).

    >>> schema = fastavro.parse_schema({"type": "record", "name": "p", "fields": [
    ...     {"name": "flux", "type": "float"}, {"name": "band", "type": ["null", "string"]}]})
    >>> fill_defaults({}, schema)
    {'flux': 0.0, 'band': None}
    """
    return _filled(record, schema, schema.get("__named_schemas", {}))


def _filled(value, schema, named: dict):
    if isinstance(schema, str):
        if schema in named:
            return _filled(value, named[schema], named)
        return _PRIMITIVE_DEFAULTS[schema] if value is None else value
    if isinstance(schema, list):  # a union
        if value is None:
            return None if "null" in schema else _filled(None, schema[0], named)
        for branch in schema:
            branch = named.get(branch, branch) if isinstance(branch, str) else branch
            kind = branch.get("type") if isinstance(branch, dict) else None
            if (kind == "record" and isinstance(value, dict)) or (kind == "array" and isinstance(value, list)):
                return _filled(value, branch, named)
        return value
    kind = schema["type"]
    if kind == "record":
        value = {} if value is None else value
        out = dict(value)
        for field in schema["fields"]:
            name = field["name"]
            if value.get(name) is not None:
                out[name] = _filled(value[name], field["type"], named)
            elif "default" in field:
                out[name] = field["default"]
            else:
                out[name] = _filled(None, field["type"], named)
        return out
    if kind == "array":
        return [_filled(item, schema["items"], named) for item in value or []]
    if kind == "map":
        return {key: _filled(item, schema["values"], named) for key, item in (value or {}).items()}
    if kind == "enum":
        return schema["symbols"][0] if value is None else value
    if kind == "fixed":
        return bytes(schema["size"]) if value is None else value
    return _filled(value, kind, named)  # a primitive written as a dict, e.g. with a logicalType

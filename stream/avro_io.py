"""alertformer's own Avro messages: schemas kept in `stream/schemas/`, single-object encoding.

Every record of alertformer's own schemas is Avro *single-object encoding* (Avro 1.8+ spec):
``C3 01`` + the schema's CRC-64-AVRO fingerprint (8 bytes, little-endian) + the
schemaless body. Any Avro client can read it with the `.avsc` files shipped here;
`decode` finds the schema by its fingerprint. ELAsTiCC2 ``brokerClassification``
records are written schemaless, as the DESC TOM reads them
(``schemas/elasticc.v0_9_1.brokerClassification.avsc``, copied from LSSTDESC/elasticc).
"""
import io
import json
from functools import cache
from importlib import resources

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from stream.errors import BadPacket

SINGLE_OBJECT_MAGIC = b"\xc3\x01"


@cache
def load_schema(name: str) -> dict:
    """Parse ``stream/schemas/<name>.avsc``, e.g. ``load_schema("alertformer.deadletter")``."""
    text = resources.files("stream.schemas").joinpath(f"{name}.avsc").read_text()
    return fastavro.parse_schema(json.loads(text))


@cache
def schema_fingerprint(name: str) -> bytes:
    canonical = to_parsing_canonical_form(load_schema(name))
    return int(fingerprint(canonical, "CRC-64-AVRO"), 16).to_bytes(8, "little")


@cache
def _schemas_by_fingerprint() -> dict[bytes, str]:
    names = [p.name.removesuffix(".avsc") for p in resources.files("stream.schemas").iterdir()
             if p.name.endswith(".avsc")]
    return {schema_fingerprint(n): n for n in names}


def encode(name: str, record: dict) -> bytes:
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MAGIC + schema_fingerprint(name))
    fastavro.schemaless_writer(buf, load_schema(name), record)
    return buf.getvalue()


def encode_schemaless(name: str, record: dict) -> bytes:
    """Plain schemaless Avro, for formats whose readers expect it (ELAsTiCC brokerClassification)."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, load_schema(name), record)
    return buf.getvalue()


def decode_schemaless(name: str, payload: bytes) -> dict:
    try:
        return fastavro.schemaless_reader(io.BytesIO(payload), load_schema(name))
    except (EOFError, ValueError, TypeError, IndexError) as err:
        raise BadPacket(f"bad {name} body: {err}") from None


def decode(payload: bytes) -> tuple[str, dict]:
    """Return ``(schema name, record)`` of a message written by `encode`.

    Raises BadPacket for a missing magic, an unknown fingerprint or a bad body.
    """
    if payload[:2] != SINGLE_OBJECT_MAGIC or len(payload) < 10:
        raise BadPacket("not an Avro single-object message (no C3 01 magic)")
    name = _schemas_by_fingerprint().get(payload[2:10])
    if name is None:
        raise BadPacket(f"unknown schema fingerprint {payload[2:10].hex()}")
    try:
        return name, fastavro.schemaless_reader(io.BytesIO(payload[10:]), load_schema(name))
    except (EOFError, ValueError, TypeError, IndexError) as err:
        raise BadPacket(f"bad {name} body: {err}") from None

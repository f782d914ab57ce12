"""alertformer's own Avro messages: schemas kept in `stream/schemas/`, single-object encoding.

Every record of alertformer's own schemas is Avro *single-object encoding* (Avro 1.8+ spec):
``C3 01`` + the schema's CRC-64-AVRO fingerprint (8 bytes, little-endian) + the
schemaless body. Any Avro client can read it with the `.avsc` files shipped here;
`decode` finds the schema by its fingerprint. A schema changes only by adding fields with
defaults; its earlier versions stay in ``schemas/previous/`` so that records written with
them still decode, into the current schema (the new fields take their defaults). ELAsTiCC2 ``brokerClassification``
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
PREVIOUS_DIR = "previous"  # earlier versions of the schemas, for records written before a change


@cache
def load_schema(name: str) -> dict:
    """Parse ``stream/schemas/<name>.avsc``, e.g. ``load_schema("alertformer.deadletter")``."""
    text = resources.files("stream.schemas").joinpath(f"{name}.avsc").read_text()
    return fastavro.parse_schema(json.loads(text))


@cache
def schema_fingerprint(name: str) -> bytes:
    return _fingerprint(load_schema(name))


def _fingerprint(schema: dict) -> bytes:
    return int(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"), 16).to_bytes(8, "little")


@cache
def _schemas_by_fingerprint() -> dict[bytes, tuple[str, dict]]:
    """Fingerprint → (schema name, writer schema): every current schema, and the earlier versions
    kept in ``schemas/previous/`` (``<name>.<n>.avsc``), whose records decode into the current one."""
    files = resources.files("stream.schemas")
    names = [p.name.removesuffix(".avsc") for p in files.iterdir() if p.name.endswith(".avsc")]
    by_fingerprint = {schema_fingerprint(n): (n, load_schema(n)) for n in names}
    for path in files.joinpath(PREVIOUS_DIR).iterdir():
        if path.name.endswith(".avsc"):
            writer = fastavro.parse_schema(json.loads(path.read_text()))
            by_fingerprint.setdefault(_fingerprint(writer), (path.name.removesuffix(".avsc").rsplit(".", 1)[0], writer))
    return by_fingerprint


def encode(name: str, record: dict) -> bytes:
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MAGIC + schema_fingerprint(name))
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
    name, writer = _schemas_by_fingerprint().get(payload[2:10], (None, None))
    if name is None:
        raise BadPacket(f"unknown schema fingerprint {payload[2:10].hex()}")
    reader = load_schema(name)
    try:
        return name, fastavro.schemaless_reader(io.BytesIO(payload[10:]), writer, None if writer is reader else reader)
    except (EOFError, ValueError, TypeError, IndexError) as err:
        raise BadPacket(f"bad {name} body: {err}") from None

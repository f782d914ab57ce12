"""ZTF alerts as Fink redistributes them: schemaless Avro, the writer schema as JSON in the message key.

Fink's schema is ZTF's with Fink's own fields added (cross-matches, classifier scores); those are
read past, and the ZTF fields decode as `stream.decode.ztf` decodes a ZTF packet. Each distinct
schema is parsed once.
"""
import functools
import json

import fastavro

from stream.alert import DecodedAlert
from stream.decode._avro import raising_bad_packet, read_record
from stream.decode.ztf import ztf_alert
from stream.errors import BadPacket

SCHEMA_CACHE_SIZE = 16  # distinct schemas kept parsed (one per Fink release in the stream, in practice)


@functools.lru_cache(maxsize=SCHEMA_CACHE_SIZE)
def _schema(key: bytes) -> dict:
    try:
        return fastavro.parse_schema(json.loads(key))
    except (ValueError, TypeError, fastavro.schema.SchemaParseException) as err:
        raise BadPacket(f"the message key is not an Avro schema (Fink sends the writer schema as the key): "
                        f"{type(err).__name__}: {err}") from None


@raising_bad_packet
def decode_fink_ztf(payload: bytes, *, key: bytes | None = None) -> DecodedAlert:
    """Decode one ZTF alert of a Fink topic: `payload` schemaless Avro written with the schema in `key`
    (`BadPacket` as `decode_ztf`, or for a key that is not a schema)."""
    if not key:
        raise BadPacket("no message key: Fink sends the writer schema as the key")
    record = read_record(payload, _schema(bytes(key)))
    if not isinstance(record, dict):
        raise BadPacket(f"the record is a {type(record).__name__}, expected a ZTF alert")
    return ztf_alert(record)

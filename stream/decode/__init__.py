"""Alert decoders: survey packets in, `DecodedAlert` (nJy, MJD TAI, band codes) out.

One module per survey (`rubin`, `ztf`, `elasticc`). Every decoder takes the
message bytes and returns a `stream.alert.DecodedAlert`, or raises
`stream.errors.BadPacket` naming the problem; no other exception escapes for
bad input.

>>> decode = get_decoder("rubin")
>>> decode(b"\\x00\\x00\\x00\\x10\\x92")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
stream.errors.BadPacket: unknown Rubin schema id 4242 (known: 700, 701, ..., 1000, ...; no schema_registry.url to ask)
"""
import functools
import inspect
from collections.abc import Callable

from stream.alert import DecodedAlert
from stream.decode.elasticc import decode_elasticc, elasticc_schema, encode_elasticc
from stream.decode.rubin import (
    decode_rubin, encode_rubin, rubin_records_from_parquet, rubin_schema, rubin_versions, schema_id,
)
from stream.decode.fink import decode_fink_ztf
from stream.decode.ztf import CONTAINER_MAGIC, decode_ztf
from stream.errors import BadPacket, ConfigError

__all__ = [
    "get_decoder", "decode_auto", "decode_fink_ztf", "KEYED_FORMATS", "decode_rubin", "decode_ztf", "decode_elasticc",
    "encode_rubin", "encode_elasticc", "rubin_records_from_parquet", "rubin_schema", "rubin_versions",
    "schema_id", "elasticc_schema",
    "FORMATS",
]


def decode_auto(payload: bytes, *, registry=None) -> DecodedAlert:
    """Decode a ZTF container file (starts with ``b"Obj\\x01"``) or a Rubin wire-format message (``b"\\x00"``).

    ELAsTiCC's schemaless Avro has no marker, so it needs the ``"elasticc"`` format. `registry`: as
    `decode_rubin`'s.

    Raises
    ------
    BadPacket
        ``"unrecognised alert format ..."`` for anything else, or the chosen
        decoder's error.
    """
    if not payload:
        raise BadPacket("empty message (no bytes)")
    if payload[:4] == CONTAINER_MAGIC:
        return decode_ztf(payload)
    if payload[0] == 0:
        return decode_rubin(payload, registry=registry)
    raise BadPacket(f"unrecognised alert format: starts with {bytes(payload[:4])!r}, neither a ZTF Avro "
                    "container file (b'Obj\\x01') nor the Confluent wire format (b'\\x00')")


FORMATS: dict[str, Callable[..., DecodedAlert]] = {
    "rubin": decode_rubin, "ztf": decode_ztf, "elasticc": decode_elasticc, "auto": decode_auto,
    "fink-ztf": decode_fink_ztf,  # takes each message's key too (KEYED_FORMATS)
}
KEYED_FORMATS = frozenset({"fink-ztf"})  # decoders called with ``key=`` the message key


def get_decoder(fmt: str, **opts) -> Callable[[bytes], DecodedAlert]:
    """The decoder for alert format `fmt`, with its options bound.

    Parameters
    ----------
    fmt : str
        ``"rubin"`` (options: ``version="10.0"`` for schemaless payloads),
        ``"ztf"``, ``"elasticc"`` (options: ``wire_format=True``) or ``"auto"``
        (ZTF or Rubin wire format, told apart by the first bytes).
    **opts
        Keyword options of that decoder.

    Returns
    -------
    callable
        ``decode(payload: bytes) -> DecodedAlert``, raising `BadPacket`.

    Raises
    ------
    ConfigError
        For an unknown format, an unknown option or an unknown Rubin version.

    >>> get_decoder("rubin", version="10.0").keywords
    {'version': '10.0'}
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown alert format {fmt!r} (known: {', '.join(FORMATS)})")
    decode = FORMATS[fmt]
    try:
        inspect.signature(decode).bind(b"", **opts)
    except TypeError as err:
        raise ConfigError(f"alert format {fmt!r}: {err}") from None
    if opts.get("version") is not None:
        rubin_schema(opts["version"])  # fail now, not on the first message
    return functools.partial(decode, **opts)

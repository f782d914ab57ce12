"""Write a batch of flat Avro records from numpy columns: one compiled pass, no dict per record.

`BatchRecordWriter(schema, prefix)` compiles the schema's fields into a list of
writes; `write(columns, n)` encodes `n` records, each ``prefix`` + the schemaless
body, byte for byte what ``fastavro.schemaless_writer`` writes for the same
values (the tests compare them). It exists because building a dict per alert
and handing it to fastavro cost the scoring loop more than decoding the alert.

Field types it writes: ``int`` and ``long`` (also with a logical type, such as
``timestamp-millis``), ``float``, ``double``, ``string``, the union
``["null", long]`` (always the long branch), and one array of records of an
``int`` and a ``float`` (class id, probability). Anything else is refused when the
writer is built, naming the field.

Column values, per field name: a scalar (the same value in every record) or a
(n,) array or sequence; strings as ``str`` or a sequence of ``str``; the array
field as ``(ids, values)``: ids (C,) ints shared by all records and values
(n, C) floats.
"""
from collections.abc import Mapping

import numpy as np
from numba import njit

OP_LONG, OP_FLOAT, OP_DOUBLE, OP_STRING, OP_NULL_OR_LONG, OP_PAIRS = range(6)
VARINT_MAX_BYTES = 10
LONG_TYPES = ("int", "long")


def _field_op(field: dict) -> int:
    kind = field["type"]
    if isinstance(kind, dict) and kind.get("type") in LONG_TYPES:
        return OP_LONG
    if kind in LONG_TYPES:
        return OP_LONG
    if kind in ("float", "double", "string"):
        return {"float": OP_FLOAT, "double": OP_DOUBLE, "string": OP_STRING}[kind]
    if isinstance(kind, list) and len(kind) == 2 and kind[0] == "null" and _field_op({"type": kind[1]}) == OP_LONG:
        return OP_NULL_OR_LONG
    if isinstance(kind, dict) and kind.get("type") == "array" and isinstance(kind["items"], dict):
        items = [f["type"] for f in kind["items"].get("fields", [])]
        if len(items) == 2 and items[0] == "int" and items[1] == "float":
            return OP_PAIRS
    raise ValueError(f"field {field['name']!r}: type {kind!r} is not written by BatchRecordWriter")


class BatchRecordWriter:
    """Encoder of one record schema (a parsed or plain Avro schema dict) for whole batches.

    Parameters
    ----------
    schema : dict
        A record schema.
    prefix : bytes
        Written before each body (e.g. the single-object header).
    """

    def __init__(self, schema: dict, prefix: bytes = b""):
        self.fields = [f["name"] for f in schema["fields"]]
        self.ops = [_field_op(f) for f in schema["fields"]]
        if self.ops.count(OP_PAIRS) > 1:
            raise ValueError(f"schema {schema.get('name')!r}: more than one array field")
        self.prefix = np.frombuffer(prefix, dtype=np.uint8)

    def write(self, columns: Mapping, n: int) -> list[bytes]:
        """The `n` encoded records of `columns` (see the module docstring); KeyError names a missing field."""
        if n == 0:
            return []
        longs, floats, doubles, texts, slots = [], [], [], [], []
        pair_ids, pair_values = np.zeros(0, np.int64), np.zeros((n, 0), np.float32)
        for name, op in zip(self.fields, self.ops):
            value = columns[name]
            if op in (OP_LONG, OP_NULL_OR_LONG):
                slots.append(len(longs))
                longs.append(_column(name, value, np.int64, n))
            elif op == OP_FLOAT:
                slots.append(len(floats))
                floats.append(_column(name, value, np.float32, n))
            elif op == OP_DOUBLE:
                slots.append(len(doubles))
                doubles.append(_column(name, value, np.float64, n))
            elif op == OP_STRING:
                slots.append(len(texts))
                texts.append(value)
            else:
                slots.append(0)
                pair_ids = np.asarray(value[0], dtype=np.int64)
                pair_values = np.ascontiguousarray(value[1], dtype=np.float32).reshape(n, len(pair_ids))
        pool, bounds = _string_columns(texts, n)
        per_record = (len(self.prefix) + (VARINT_MAX_BYTES + 1) * len(longs) + VARINT_MAX_BYTES * len(texts)
                      + 4 * len(floats) + 8 * len(doubles) + (VARINT_MAX_BYTES + 4) * len(pair_ids)
                      + VARINT_MAX_BYTES + 1)  # bytes at most, strings' own bytes aside
        out = np.empty(n * per_record + int((bounds[..., 1] - bounds[..., 0]).sum()), dtype=np.uint8)
        ends = _write_records(
            np.array(list(zip(self.ops, slots)), dtype=np.int64).reshape(-1, 2),
            _stack(longs, n, np.int64), _stack(floats, n, np.float32).view(np.uint32),
            _stack(doubles, n, np.float64).view(np.uint64), pool, bounds, pair_ids,
            pair_values.view(np.uint32), self.prefix, out)
        data = out.tobytes()
        starts = np.concatenate(([0], ends[:-1]))
        return [data[s:e] for s, e in zip(starts.tolist(), ends.tolist())]


def _column(name: str, value, dtype, n: int) -> np.ndarray:
    """(n,) view of a scalar or (n,) column; ValueError naming the field otherwise."""
    array = np.asarray(value, dtype=dtype)
    if array.shape not in ((), (n,)):
        raise ValueError(f"column {name!r}: shape {array.shape} for {n} records")
    return np.broadcast_to(array, (n,))


def _stack(columns: list[np.ndarray], n: int, dtype) -> np.ndarray:
    """(n, k) C-contiguous matrix of k columns."""
    if not columns:
        return np.zeros((n, 0), dtype=dtype)
    return np.ascontiguousarray(np.stack(columns, axis=1), dtype=dtype)


def _string_columns(texts: list, n: int) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 pool of all string columns and (n, k, 2) start/end offsets into it; a scalar is stored once."""
    pieces, bounds, offset = [], np.zeros((n, len(texts), 2), dtype=np.int64), 0
    for k, value in enumerate(texts):
        if isinstance(value, str):
            raw = value.encode()
            pieces.append(raw)
            bounds[:, k] = (offset, offset + len(raw))
            offset += len(raw)
            continue
        encoded = [v.encode() for v in value]
        if len(encoded) != n:
            raise ValueError(f"string column {k}: {len(encoded)} values for {n} records")
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=n)
        ends = offset + np.cumsum(lengths)
        bounds[:, k, 0], bounds[:, k, 1] = ends - lengths, ends
        pieces += encoded
        offset = int(ends[-1])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), bounds


@njit(cache=True, nogil=True, inline="always")
def _varint(out, pos, value):
    """Zigzag varint of a signed 64-bit `value` at `pos`; returns the position after it."""
    zz = np.uint64((value << 1) ^ (value >> 63))
    while zz >= 0x80:
        out[pos] = np.uint8((zz & np.uint64(0x7F)) | np.uint64(0x80))
        zz >>= np.uint64(7)
        pos += 1
    out[pos] = np.uint8(zz)
    return pos + 1


@njit(cache=True, nogil=True, inline="always")
def _little_endian(out, pos, bits, n_bytes):
    for b in range(n_bytes):
        out[pos + b] = np.uint8((bits >> np.uint64(8 * b)) & np.uint64(0xFF))
    return pos + n_bytes


@njit(cache=True, nogil=True)
def _write_records(ops, longs, float_bits, double_bits, pool, bounds, pair_ids, pair_bits, prefix, out):
    """Write every record into `out`; returns (n,) end offsets."""
    n = longs.shape[0]
    ends = np.empty(n, dtype=np.int64)
    pos = 0
    for r in range(n):
        for b in range(prefix.size):
            out[pos + b] = prefix[b]
        pos += prefix.size
        for k in range(ops.shape[0]):
            op, slot = ops[k, 0], ops[k, 1]
            if op == OP_LONG:
                pos = _varint(out, pos, longs[r, slot])
            elif op == OP_NULL_OR_LONG:
                out[pos] = 2  # union branch 1, zigzag-encoded
                pos = _varint(out, pos + 1, longs[r, slot])
            elif op == OP_FLOAT:
                pos = _little_endian(out, pos, np.uint64(float_bits[r, slot]), 4)
            elif op == OP_DOUBLE:
                pos = _little_endian(out, pos, double_bits[r, slot], 8)
            elif op == OP_STRING:
                start, end = bounds[r, slot, 0], bounds[r, slot, 1]
                pos = _varint(out, pos, end - start)
                for b in range(end - start):
                    out[pos + b] = pool[start + b]
                pos += end - start
            else:
                count = pair_ids.size
                if count:
                    pos = _varint(out, pos, count)
                    for c in range(count):
                        pos = _varint(out, pos, pair_ids[c])
                        pos = _little_endian(out, pos, np.uint64(pair_bits[r, c]), 4)
                out[pos] = 0  # end of the array's blocks
                pos += 1
        ends[r] = pos
    return ends

"""Skip plans: an Avro alert schema compiled to a flat program that `kernel` runs over the bytes.

A plan is an ``(L, 5)`` int64 array of instructions ``(op, a, b, c, d)``, a
table of field codes and a jump table for unions. A run of consecutive fields
of plain types (float, double, boolean, int, long, string, bytes, fixed, each
maybe in a union with null: the bulk of a diaSource) becomes one ``FIELDS``
instruction over their codes; the few fields the light curve needs become
reads into registers. The photometry records (``diaSource``,
``prvDiaSources[i]``, ``prvDiaForcedSources[i]``) are framed by ``POINT_BEGIN``
/ ``POINT_END kind``, which emits the registers as one point.

The plan accepts a subset of what fastavro accepts and reads the same values
from it; anything else stops the run with a reason (`REASONS`), and the
decoder hands that message to fastavro. So a plan need not mimic fastavro's
handling of malformed input (negative lengths, 11-byte varints, negative
union indices), only recognise it.

A schema the compiler does not handle (a recursive record, an array whose
items can take zero bytes, a logical type fastavro converts with checks we do
not reproduce, photometry fields of another type) raises `Unsupported`; the
decoder then leaves that version to fastavro.

>>> from stream.decode import rubin_schema
>>> plan = compile_plan(rubin_schema("10.0"))
>>> plan.program.shape[1], plan.min_point_bytes > 0
(5, True)
"""
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from fastavro.read import LOGICAL_READERS

# Opcodes: (op, a, b, c, d).
OP_END = 0            # end of the alert record: every byte must have been read
OP_FIELDS = 1         # a fields whose codes are fields[b:b + a]: skipped, or read into registers
OP_UNION = 6          # a branches; the jump table from b holds each branch's first instruction
OP_JUMP = 7           # to a
OP_ENUM = 8           # one enum of a symbols
OP_TIMESTAMP = 9      # one long that must lie in a..b (fastavro turns it into a datetime)
OP_ARRAY = 10         # block count; array depth a; b: the instruction after the matching ARRAY_END
OP_ARRAY_END = 11     # next item of the array at depth a, whose body starts at b
OP_NULL_INT = 16      # integer register a is null
OP_NULL_FLOAT = 17    # float register a is null
OP_POINT_BEGIN = 18   # a photometry record starts: point registers are null
OP_POINT_END = 19     # it ends: emit a point of kind a
OP_BAD = 20           # a value decode_rubin refuses (e.g. a null diaSource): stop, reason a

# Field codes of OP_FIELDS: ``arg << 8 | NULLABLE | value index << 4 | kind``. A
# nullable field is a two-branch union with null, its value at index 0 or 1.
# Skips: arg is K_FIXED's size (adjacent fixed fields merge). Reads: arg is the
# register, which the null branch marks null.
K_FIXED, K_VARINT, K_STRING, K_BYTES = 0, 1, 2, 3
K_READ_LONG = 4    # varint into integer register
K_READ_DOUBLE = 5  # 8 bytes into float register
K_READ_FLOAT = 6   # 4 bytes into float register
K_READ_BAND = 7    # band letter into integer register as a band code (-1: not a known band)
K_READ_TEXT = 8    # string: its first byte's offset into integer register arg, its length into arg + 1
NULLABLE = 32

# Point kinds (OP_POINT_END a).
TRIGGER, DETECTION, FORCED = 0, 1, 2

# Integer registers: the point's, then the alert's (its context: diaObject.nDiaSources).
R_ID, R_VISIT, R_BAND, R_ALERT_ID, R_OBJECT, R_SS_OBJECT, R_N_DIA_SOURCES = range(7)
# Float registers (the context: diaSource.reliability, diaObject.firstDiaSourceMjdTai).
F_MJD, F_FLUX, F_ERR, F_RA, F_DEC, F_RELIABILITY, F_FIRST_MJD = range(7)
N_REGISTERS = 7
N_POINT_INT, N_POINT_FLOAT = 3, 3  # registers 0..2 are the point's, reset at POINT_BEGIN

# Why the fast path handed a message to fastavro (0: it did not).
REASONS = (
    "decoded by the fast path",
    "wire-format header or schema id not handled",
    "truncated",
    "varint longer than 10 bytes",
    "negative string or bytes length",
    "invalid UTF-8",
    "union or enum index out of range",
    "timestamp outside the datetime range",
    "bytes left after the record",
    "array block count out of range",
    "a value the light curve needs is null",
    "non-finite or non-positive photometry",
    "unknown band",
    "no object id",
    "implausible value in the alert's own source or position (stream.decode.physical)",
)
(OK, BAD_HEADER, BAD_TRUNCATED, BAD_VARINT, BAD_LENGTH, BAD_UTF8, BAD_INDEX, BAD_TIMESTAMP,
 BAD_TRAILING, BAD_BLOCK, BAD_NULL, BAD_VALUE, BAD_BAND, BAD_OBJECT, IMPLAUSIBLE) = range(len(REASONS))

# fastavro reads timestamp-micros as epoch + timedelta(microseconds=v), which
# raises OverflowError outside datetime's years 1..9999.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MIN_US = (datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH) // _EPOCH.resolution
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc) - _EPOCH) // _EPOCH.resolution
# (local-timestamp-* the same, from a naive epoch.)
TIMESTAMP_RANGE = {
    f"long-{local}timestamp-{unit}": (-(-_MIN_US // scale), _MAX_US // scale)
    for local in ("", "local-") for unit, scale in (("micros", 1), ("millis", 1000))
}
# Other logical types fastavro converts (date, time of day, UUID, decimal) with
# checks of their own that the plan does not reproduce: such a version goes to
# fastavro. A logical type fastavro does not know is read as its plain type.
CONVERTED_LOGICAL = frozenset(LOGICAL_READERS)

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_FIXED_SIZE = {"boolean": 1, "float": 4, "double": 8}

# What decode_rubin reads, by record: field -> register role.
_TRIGGER_FIELDS = {
    "diaSourceId": ("long", R_ID), "visit": ("long", R_VISIT), "midpointMjdTai": ("number", F_MJD),
    "band": ("band", R_BAND), "psfFlux": ("number", F_FLUX), "psfFluxErr": ("number", F_ERR),
    "diaObjectId": ("long", R_OBJECT), "ssObjectId": ("long", R_SS_OBJECT),
    "ra": ("number", F_RA), "dec": ("number", F_DEC), "reliability": ("number", F_RELIABILITY),
}
_DETECTION_FIELDS = {name: _TRIGGER_FIELDS[name]
                     for name in ("diaSourceId", "visit", "midpointMjdTai", "band", "psfFlux", "psfFluxErr")}
_FORCED_FIELDS = {"diaForcedSourceId": ("long", R_ID),
                  **{k: v for k, v in _DETECTION_FIELDS.items() if k != "diaSourceId"}}
_OBJECT_FIELDS = {"firstDiaSourceMjdTai": ("number", F_FIRST_MJD), "nDiaSources": ("long", R_N_DIA_SOURCES)}


class Unsupported(Exception):
    """The schema uses something the fast path does not handle; fastavro decodes that version."""


@dataclass(frozen=True)
class Plan:
    """A compiled schema.

    Attributes
    ----------
    name : str
        The schema's full name, e.g. ``"lsst.v10_0.alert"``.
    program : (L, 5) int64
        Instructions ``(op, a, b, c, d)``, starting at 0.
    fields : (F,) int64
        Field codes of the FIELDS instructions.
    jumps : (J,) int64
        Union jump table (instruction indices).
    max_depth : int
        Deepest array nesting (the kernel keeps one block counter per level).
    min_point_bytes : int
        Fewest bytes a photometry record takes: bounds the points in a message.
    """

    name: str
    program: np.ndarray
    fields: np.ndarray
    jumps: np.ndarray
    max_depth: int
    min_point_bytes: int


def compile_plan(schema: dict) -> Plan:
    """Compile a parsed ``lsst.vM_m.alert`` schema (`stream.decode.rubin_schema`) into a `Plan`.

    Raises
    ------
    Unsupported
        For a schema the fast path leaves to fastavro.
    """
    compiler = _Compiler(schema.get("__named_schemas", {}))
    compiler.alert(schema)
    return compiler.plan(schema["name"])


class _Compiler:
    def __init__(self, named: dict):
        self.named = named
        self.code: list[list[int]] = []
        self.fields: list[int] = []
        self.jumps: list[int] = []
        self.barrier = 0  # no merging into instructions before this (a jump lands here)
        self.depth = 0
        self.max_depth = 0
        self.min_point = None
        self.in_progress: set[str] = set()

    def plan(self, name: str) -> Plan:
        self.emit(OP_END)
        if self.min_point is None or self.min_point < 1:
            raise Unsupported("a photometry record can take zero bytes")
        return Plan(name, np.array(self.code, dtype=np.int64).reshape(-1, 5),
                    np.array(self.fields or [0], dtype=np.int64), np.array(self.jumps or [0], dtype=np.int64),
                    self.max_depth, self.min_point)

    # --- emission ----------------------------------------------------------

    def emit(self, op: int, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> int:
        """Append an instruction; return its index."""
        self.code.append([op, a, b, c, d])
        return len(self.code) - 1

    def field(self, code: int) -> None:
        """One field of code `code` (a skip or a read), extending the current FIELDS run if no jump lands between."""
        last = self.code[-1] if len(self.code) > self.barrier else None
        if last is None or last[0] != OP_FIELDS:
            self.emit(OP_FIELDS, 0, len(self.fields))
            last = self.code[-1]
        previous = self.fields[-1] if last[1] else None
        if code & 0xFF == K_FIXED and previous is not None and previous & 0xFF == K_FIXED:
            self.fields[-1] += code  # adjacent fixed sizes add up
            return
        self.fields.append(code)
        last[1] += 1

    def label(self) -> int:
        """Index of the next instruction, which a jump will target."""
        self.barrier = len(self.code)
        return self.barrier

    # --- schema walking ----------------------------------------------------

    def resolve(self, schema):
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            if schema not in self.named:
                raise Unsupported(f"unknown named type {schema!r}")
            return self.named[schema]
        return schema

    def kind(self, schema) -> str:
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, dict):
            return schema["type"] if isinstance(schema["type"], str) else "nested"
        return schema

    def skip(self, schema) -> None:
        """Instructions that consume one value of `schema`, reading nothing."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            self.union(schema, self.skip)
            return
        if isinstance(schema, str):
            self.primitive(schema)
            return
        kind = schema["type"]
        if isinstance(kind, (dict, list)):  # {"type": {...}}: the same as the inner schema
            self.skip(kind)
            return
        if kind == "record" or kind == "error":
            self.enter(schema)
            for field in schema["fields"]:
                self.skip(field["type"])
            self.leave(schema)
        elif kind == "array":
            self.array(lambda: self.skip(schema["items"]), schema["items"])
        elif kind == "map":
            self.array(lambda: (self.field(K_STRING), self.skip(schema["values"])), None)
        elif kind == "enum":
            self.emit(OP_ENUM, len(schema["symbols"]))
        elif kind == "fixed":
            self.field(int(schema["size"]) << 8 | K_FIXED)
        elif kind in _PRIMITIVES:
            key = f"{kind}-{schema.get('logicalType')}"
            if key in TIMESTAMP_RANGE:
                self.emit(OP_TIMESTAMP, *TIMESTAMP_RANGE[key])
            elif key in CONVERTED_LOGICAL:
                raise Unsupported(f"logical type {key}")
            else:
                self.primitive(kind)
        else:
            raise Unsupported(f"type {kind!r}")

    def primitive(self, name: str) -> None:
        if name == "null":
            return
        code = _field_code(name)
        if code is None:
            raise Unsupported(f"type {name!r}")
        self.field(code)

    def union(self, branches: list, body) -> None:
        """A union; `body(branch)` emits each branch's instructions."""
        simple = _simple_nullable(branches)
        if simple is not None and body == self.skip:
            value, index = simple
            code = _field_code(value)
            if code is not None:
                self.field(code | NULLABLE | index << 4)
                return
        start = len(self.jumps)
        self.jumps.extend([0] * len(branches))
        self.emit(OP_UNION, len(branches), start)
        exits = []
        for i, branch in enumerate(branches):
            self.jumps[start + i] = self.label()
            body(branch)
            exits.append(self.emit(OP_JUMP))
        end = self.label()
        for at in exits:
            self.code[at][1] = end

    def array(self, body, items) -> None:
        """An array (or map, whose `body` reads the key first) of items emitted by `body()`."""
        if items is not None and self.min_size(items) < 1:
            raise Unsupported("array items that can take zero bytes (a block count could loop for ever)")
        depth = self.depth
        self.depth += 1
        self.max_depth = max(self.max_depth, self.depth)
        head = self.emit(OP_ARRAY, depth)
        start = self.label()
        body()
        self.emit(OP_ARRAY_END, depth, start)
        self.code[head][2] = self.label()
        self.depth -= 1

    def enter(self, record: dict) -> None:
        name = record.get("name", "")
        if name in self.in_progress:
            raise Unsupported(f"recursive record {name!r}")
        self.in_progress.add(name)

    def leave(self, record: dict) -> None:
        self.in_progress.discard(record.get("name", ""))

    def min_size(self, schema, seen=frozenset()) -> int:
        """Fewest bytes one value of `schema` takes."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return 1 + min(self.min_size(branch, seen) for branch in schema)
        if isinstance(schema, str):
            return {"null": 0, "boolean": 1, "float": 4, "double": 8}.get(schema, 1)
        kind = schema["type"]
        if isinstance(kind, (dict, list)):
            return self.min_size(kind, seen)
        if kind in ("record", "error"):
            name = schema.get("name", "")
            if name in seen:
                raise Unsupported(f"recursive record {name!r}")
            return sum(self.min_size(f["type"], seen | {name}) for f in schema["fields"])
        if kind == "fixed":
            return int(schema["size"])
        return self.min_size(kind, seen) if kind in _PRIMITIVES else 1  # array, map, enum: >= 1 byte

    # --- the fields decode_rubin reads ---------------------------------------

    def alert(self, schema: dict) -> None:
        fields = {f["name"]: f["type"] for f in schema["fields"]}
        for needed in ("diaSource", "prvDiaSources", "prvDiaForcedSources"):
            if needed not in fields:
                raise Unsupported(f"no {needed} field")
        id_field = "alertId" if "alertId" in fields else "diaSourceId"
        if id_field not in fields:
            raise Unsupported("neither alertId nor diaSourceId")
        self.enter(schema)
        for name, ftype in fields.items():
            if name == id_field:
                self.scalar(ftype, "long", R_ALERT_ID, nullable=False)
            elif name == "diaSource":
                self.points(ftype, TRIGGER, _TRIGGER_FIELDS, in_array=False)
            elif name == "prvDiaSources":
                self.points(ftype, DETECTION, _DETECTION_FIELDS, in_array=True)
            elif name == "prvDiaForcedSources":
                self.points(ftype, FORCED, _FORCED_FIELDS, in_array=True)
            elif name == "diaObject":
                self.record(ftype, _OBJECT_FIELDS)
            else:
                self.skip(ftype)
        self.leave(schema)

    def points(self, schema, kind: int, roles: dict, in_array: bool) -> None:
        """The photometry record (or, `in_array`, the nullable array of them) at one alert field."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            def branch(b):
                if self.kind(b) == "null":
                    if not in_array:  # a null diaSource: decode_rubin refuses it
                        self.emit(OP_BAD, BAD_NULL)
                else:
                    self.points(b, kind, roles, in_array)
            self.union(schema, branch)
            return
        if in_array:
            if self.kind(schema) != "array":
                raise Unsupported(f"photometry field of type {self.kind(schema)!r}, expected an array")
            items = self.resolve(schema["items"])
            self.array(lambda: self.point(items, kind, roles), items)
        else:
            self.point(schema, kind, roles)

    def point(self, schema, kind: int, roles: dict) -> None:
        schema = self.resolve(schema)
        if self.kind(schema) != "record":
            raise Unsupported(f"photometry of type {self.kind(schema)!r}, expected a record")
        size = self.min_size(schema)
        self.min_point = size if self.min_point is None else min(self.min_point, size)
        self.enter(schema)
        self.emit(OP_POINT_BEGIN)
        for field in schema["fields"]:
            if field["name"] in roles:
                role, register = roles[field["name"]]
                self.scalar(field["type"], role, register, nullable=True)
            else:
                self.skip(field["type"])
        self.emit(OP_POINT_END, kind)
        self.leave(schema)

    def record(self, schema, roles: dict) -> None:
        """A record (or a union of it and null) whose fields in `roles` are read into registers, the rest
        skipped; a null leaves the registers absent."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            self.union(schema, lambda b: None if self.kind(b) == "null" else self.record(b, roles))
            return
        if self.kind(schema) != "record":
            raise Unsupported(f"a record field of type {self.kind(schema)!r}")
        self.enter(schema)
        for field in schema["fields"]:
            if field["name"] in roles:
                self.scalar(field["type"], *roles[field["name"]], nullable=True)
            else:
                self.skip(field["type"])
        self.leave(schema)

    def scalar(self, schema, role: str, register: int, nullable: bool) -> None:
        """Read a captured field of type T or a union of T and null into `register`."""
        schema = self.resolve(schema)
        simple = _simple_nullable(schema) if isinstance(schema, list) and nullable else None
        if simple is not None:
            value, index = simple
            self.read(value, role, register, nullable=1 + index)
            return
        if isinstance(schema, list):
            if len(schema) != 2 or "null" not in schema:
                raise Unsupported(f"captured field of union type {schema!r}")

            def branch(b):
                if b == "null":
                    if not nullable:  # e.g. a null alert id: leave it to decode_rubin
                        self.emit(OP_BAD, BAD_NULL)
                    else:
                        self.emit(OP_NULL_FLOAT if role == "number" else OP_NULL_INT, register)
                else:
                    self.scalar(b, role, register, nullable)
            self.union(schema, branch)
            return
        if isinstance(schema, dict) and schema.get("logicalType") is not None:
            raise Unsupported(f"captured field with logical type {schema['logicalType']!r}")
        self.read(schema["type"] if isinstance(schema, dict) else schema, role, register, nullable=0)

    def read(self, kind, role: str, register: int, nullable: int) -> None:
        """Read a field of type `kind` into `register`; `nullable`: 0, or 1 + the value's index in a union."""
        if role == "long" and kind in ("int", "long"):
            code = K_READ_LONG
        elif role == "number" and kind == "double":
            code = K_READ_DOUBLE
        elif role == "number" and kind == "float":
            code = K_READ_FLOAT
        elif role == "band" and kind == "string":
            code = K_READ_BAND
        elif role == "text" and kind == "string":
            code = K_READ_TEXT
        else:
            raise Unsupported(f"captured field of type {kind!r}, expected {role}")
        if nullable:
            code |= NULLABLE | (nullable - 1) << 4
        self.field(register << 8 | code)


def _field_code(name: str):
    """FIELDS code of a plain primitive (not nullable), None for null and the rest."""
    if name in _FIXED_SIZE:
        return _FIXED_SIZE[name] << 8 | K_FIXED
    return {"int": K_VARINT, "long": K_VARINT, "string": K_STRING, "bytes": K_BYTES}.get(name)


def _simple_nullable(branches: list):
    """(value type name, value index) of ``["null", P]`` / ``[P, "null"]`` with P a primitive name."""
    if len(branches) != 2 or "null" not in branches:
        return None
    index = 1 - branches.index("null")
    value = branches[index]
    if not isinstance(value, str) or value not in _PRIMITIVES or value == "null":
        return None
    return value, index

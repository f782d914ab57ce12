"""Column extraction from a packet's photometry records, with errors that name the field.

Each decoder gathers a packet's point records (dicts) into `Points`, pulls
columns out as numpy arrays (one list comprehension per field) and builds one
`LightCurve`. Every check failure raises `BadPacket` naming the point and the
field, e.g. ``"prvDiaSources[3].psfFlux is NaN"``.
"""
import math

import numpy as np

from models.lightcurve import LightCurve
from stream.errors import BadPacket


class Points:
    """Photometry records of one packet, each with its name in the packet.

    Attributes
    ----------
    records : list of dict
        One Avro record per point.
    names : list of str
        Where each record sits in the packet, e.g. ``"diaSource"`` or
        ``"prvDiaSources[2]"``; used in error messages.
    """

    def __init__(self, records=(), names=()):
        self.records = list(records)
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.records)

    def __add__(self, other: "Points") -> "Points":
        return Points(self.records + other.records, self.names + other.names)

    @classmethod
    def one(cls, name: str, record) -> "Points":
        """The single point `record` (e.g. the triggering source), called `name`."""
        if not isinstance(record, dict):
            raise BadPacket(f"{name} is {_kind(record)}, expected a record")
        return cls([record], [name])

    @classmethod
    def many(cls, name: str, records) -> "Points":
        """The points in the list `records` (None = no points), called ``name[i]``."""
        if records is None:
            return cls()
        if not isinstance(records, list):
            raise BadPacket(f"{name} is {_kind(records)}, expected a list")
        names = [f"{name}[{i}]" for i in range(len(records))]
        for point_name, record in zip(names, records):
            if not isinstance(record, dict):
                raise BadPacket(f"{point_name} is {_kind(record)}, expected a record")
        return cls(records, names)

    def select(self, keep) -> "Points":
        """The points where `keep` (a sequence of bool, one per point) is true."""
        kept = [i for i, k in enumerate(keep) if k]
        return Points([self.records[i] for i in kept], [self.names[i] for i in kept])

    def column(self, field: str, *, nullable: bool = False) -> list:
        """Values of `field`, one per point; BadPacket if missing (or null unless `nullable`)."""
        try:
            values = [record[field] for record in self.records]
        except KeyError:
            i = next(i for i, record in enumerate(self.records) if field not in record)
            raise BadPacket(f"{self.names[i]}.{field} is missing") from None
        if not nullable and None in values:
            raise BadPacket(f"{self.names[values.index(None)]}.{field} is null")
        return values

    def integers(self, field: str) -> np.ndarray:
        """`field` as an (N,) int64 array (ids)."""
        return self._array(field, "i", "a 64-bit integer")

    def numbers(self, field: str, *, positive: bool = False) -> np.ndarray:
        """`field` as an (N,) float64 array; BadPacket for NaN, inf or (if `positive`) values <= 0."""
        array = self._array(field, "iuf", "a number").astype(np.float64)
        bad = ~np.isfinite(array)
        if positive:
            bad |= ~(array > 0)
        if bad.any():
            i = int(np.argmax(bad))
            value = float(array[i])
            problem = "NaN" if math.isnan(value) else "inf" if math.isinf(value) else f"not positive ({value})"
            raise BadPacket(f"{self.names[i]}.{field} is {problem}")
        return array

    def _array(self, field: str, kinds: str, expected: str) -> np.ndarray:
        """`field` as an array whose dtype kind is in `kinds` (numpy picks int64 or float64)."""
        values = self.column(field)
        array = np.array(values) if values else np.empty(0, dtype=np.int64)
        if array.shape == (len(values),) and array.dtype.kind in kinds:
            return array
        i = next((i for i, value in enumerate(values) if not _fits(value, kinds)), None)
        if i is None:
            raise BadPacket(f"{field}: the values do not fit one 64-bit numeric type")
        raise BadPacket(f"{self.names[i]}.{field} is {values[i]!r}, expected {expected}")

    def codes(self, field: str, code_of: dict) -> np.ndarray:
        """`field` mapped through `code_of` (e.g. band letter -> band code) as an (N,) int8 array."""
        values = self.column(field)
        try:
            return np.array([code_of[value] for value in values], dtype=np.int8)
        except (KeyError, TypeError):
            i = next(i for i, value in enumerate(values) if not _is_key(value, code_of))
            known = ", ".join(str(key) for key in code_of)
            raise BadPacket(f"{self.names[i]}.{field} is {values[i]!r}, expected one of {known}") from None


def required(record: dict, field: str, where: str):
    """``record[field]``, or BadPacket ``"<where>.<field> is missing"`` / ``"... is null"``."""
    try:
        value = record[field]
    except KeyError:
        raise BadPacket(f"{where}.{field} is missing") from None
    if value is None:
        raise BadPacket(f"{where}.{field} is null")
    return value


def finite_float(record: dict, field: str, where: str) -> float:
    """``record[field]`` as a finite float (a position in degrees, say), else BadPacket."""
    value = Points.one(where, record).numbers(field)
    return float(value[0])


def light_curve(*groups) -> LightCurve:
    """Concatenate column groups and build one validated `LightCurve`.

    Parameters
    ----------
    *groups : tuple of 6 arrays
        Each ``(source_id, mjd_tai, band, flux_njy, flux_err_njy, is_detection)``,
        all (N_group,). Earlier groups win when a source id repeats, so pass
        the triggering source first.
    """
    columns = [np.concatenate(parts) for parts in zip(*groups)]
    try:
        return LightCurve.from_arrays(*columns)
    except ValueError as err:
        raise BadPacket(f"invalid light curve: {err}") from err


def _fits(value, kinds: str) -> bool:
    """Whether numpy turns `value` alone into a scalar of a dtype kind in `kinds`."""
    array = np.array([value])
    return array.shape == (1,) and array.dtype.kind in kinds


def _is_key(value, mapping: dict) -> bool:
    try:
        return value in mapping
    except TypeError:
        return False


def _kind(value) -> str:
    return "null" if value is None else f"a {type(value).__name__}"

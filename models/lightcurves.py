"""`LightCurves`: many light curves as flat point columns plus offsets, the hot path's one form.

The batch decoders write it, the simulator draws it, the window step builds the scored windows
as one, and `models.encode.encode_curves` reads it: no per-curve Python object between the
Kafka message and the tensors. Curve i is points ``offsets[i]:offsets[i + 1]``; a `LightCurve`
of it (`light_curve`, `curves[i]`) is a view, not a copy.
"""
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.lightcurve import LightCurve


@dataclass(frozen=True, eq=False, kw_only=True)
class LightCurves:
    """B light curves, each sorted by time with unique source ids, as (P,) point columns.

    Attributes
    ----------
    offsets : (B + 1,) int64
        Curve i is points ``offsets[i]:offsets[i + 1]``; ``offsets[0] == 0``, ``offsets[-1] == P``.
    source_id : (P,) int64
    mjd_tai : (P,) float64
        MJD, TAI scale.
    band : (P,) int8
        Code into `models.bands.BAND_NAMES`.
    flux_njy, flux_err_njy : (P,) float32
        Difference flux and its 1-sigma error, nJy.
    is_detection : (P,) bool
    ids : (B,) array, optional
        Each curve's id beside it (the decoders: alert ids; the simulator: object ids).
    """

    offsets: np.ndarray
    source_id: np.ndarray
    mjd_tai: np.ndarray
    band: np.ndarray
    flux_njy: np.ndarray
    flux_err_njy: np.ndarray
    is_detection: np.ndarray
    ids: np.ndarray | None = None

    FIELDS = LightCurve.FIELDS  # the point columns
    DTYPES = LightCurve.DTYPES

    def __post_init__(self):
        n_points = int(self.offsets[-1]) if len(self.offsets) else -1
        if len(self.offsets) == 0 or self.offsets[0] != 0:
            raise ValueError(f"offsets: must start at 0 and have B + 1 entries, got {self.offsets[:1]}")
        for name in self.FIELDS:
            if len(getattr(self, name)) != n_points:
                raise ValueError(f"{name}: {len(getattr(self, name))} points, offsets say {n_points}")
        if self.ids is not None and len(self.ids) != len(self):
            raise ValueError(f"ids: {len(self.ids)} ids for {len(self)} curves")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_points(self) -> int:
        """P, the points of all curves."""
        return int(self.offsets[-1])

    @property
    def lengths(self) -> np.ndarray:
        """(B,) int64: points per curve."""
        return np.diff(self.offsets)

    def owner(self) -> np.ndarray:
        """(P,) int64: the curve of each point."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def light_curve(self, i: int) -> LightCurve:
        """Curve `i` as a `LightCurve` of views of the columns (no copy, no check)."""
        part = slice(self.offsets[i], self.offsets[i + 1])
        return LightCurve(*(getattr(self, name)[part] for name in self.FIELDS))

    def __getitem__(self, i: int) -> LightCurve:
        return self.light_curve(i)

    def __iter__(self) -> Iterator[LightCurve]:
        return (self.light_curve(i) for i in range(len(self)))

    def to_list(self) -> list[LightCurve]:
        """One `LightCurve` (views) per curve."""
        return list(self)

    def by_id(self) -> "CurvesById":
        """The curves as a mapping from their (unique) ids."""
        return CurvesById(self)

    def take(self, index) -> "LightCurves":
        """The curves at `index` ((K,) int, or a (B,) bool mask), in that order, as new columns."""
        index = np.arange(len(self))[index] if np.asarray(index).dtype == np.bool_ else np.asarray(index, np.int64)
        lengths = self.lengths[index]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        point = np.repeat(self.offsets[index] - offsets[:-1], lengths) + np.arange(offsets[-1])  # (P',) source rows
        return LightCurves(offsets=offsets, ids=None if self.ids is None else self.ids[index],
                           **{name: getattr(self, name)[point] for name in self.FIELDS})

    @classmethod
    def from_points(cls, lengths: np.ndarray, columns: Sequence[np.ndarray], ids=None) -> "LightCurves":
        """Curves of `lengths` ((B,) int) over point `columns` in `FIELDS` order."""
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(offsets=offsets, ids=ids, **{name: np.asarray(c) for name, c in zip(cls.FIELDS, columns)})

    @classmethod
    def empty(cls, n_curves: int = 0, ids=None) -> "LightCurves":
        """`n_curves` curves without points."""
        return cls.from_points(np.zeros(n_curves, np.int64), [np.empty(0, dtype=t) for t in cls.DTYPES], ids)

    @classmethod
    def from_list(cls, curves: Sequence[LightCurve], ids=None) -> "LightCurves":
        """The columns of `curves` (copied, not checked again: `LightCurve.from_arrays` checked them)."""
        if not curves:
            return cls.empty(0, ids)
        lengths = np.fromiter((len(c) for c in curves), dtype=np.int64, count=len(curves))
        return cls.from_points(lengths, [np.concatenate([getattr(c, name) for c in curves]) for name in cls.FIELDS],
                               ids)

    @classmethod
    def concatenate(cls, parts: Sequence["LightCurves"]) -> "LightCurves":
        """The curves of `parts`, one after another; ids are kept only if every part has them."""
        if not parts:
            return cls.empty()
        ids = None if any(p.ids is None for p in parts) else np.concatenate([p.ids for p in parts])
        return cls.from_points(np.concatenate([p.lengths for p in parts]),
                               [np.concatenate([getattr(p, name) for p in parts]) for name in cls.FIELDS], ids)


class CurvesById(Mapping):
    """``{id: curve}`` over a `LightCurves` whose ids are unique; each curve is a view made when asked for."""

    def __init__(self, curves: LightCurves):
        self.curves = curves
        self._index = {key: i for i, key in enumerate(curves.ids.tolist())}

    def __getitem__(self, key) -> LightCurve:
        return self.curves.light_curve(self._index[key])

    def __iter__(self):
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

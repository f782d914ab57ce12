"""`LightCurve`: one object's photometry as a struct of arrays.

Every producer of photometry (the stream's decoders, the simulator, the
labeled-data loaders) builds this, and `models` encodes it to tensors. Past
this point there are no per-point Python objects and no astropy `Time`s.
"""
from dataclasses import dataclass

import numpy as np

from models.bands import BAND_NAMES


@dataclass(frozen=True)
class LightCurve:
    """Photometry of one object, sorted by time.

    Attributes
    ----------
    source_id : (N,) int64
        Survey id of each point (Rubin diaSourceId / diaForcedSourceId, ZTF
        candid; a derived id for ZTF upper limits). Unique within the curve.
    mjd_tai : (N,) float64
        Mid-exposure time, MJD in the TAI scale.
    band : (N,) int8
        Band code, an index into `models.bands.BAND_NAMES`.
    flux_njy, flux_err_njy : (N,) float32
        Difference-image flux and its 1-sigma error in nJy (flux can be negative).
    is_detection : (N,) bool
        True for a detection (alert-triggering source), False for forced
        photometry or an upper limit.
    """

    source_id: np.ndarray
    mjd_tai: np.ndarray
    band: np.ndarray
    flux_njy: np.ndarray
    flux_err_njy: np.ndarray
    is_detection: np.ndarray

    FIELDS = ("source_id", "mjd_tai", "band", "flux_njy", "flux_err_njy", "is_detection")
    DTYPES = (np.int64, np.float64, np.int8, np.float32, np.float32, np.bool_)

    def __len__(self) -> int:
        return len(self.mjd_tai)

    @classmethod
    def from_arrays(cls, source_id, mjd_tai, band, flux_njy, flux_err_njy, is_detection) -> "LightCurve":
        """Build a validated curve: cast dtypes, sort by time, keep the first of repeated source ids.

        Raises ValueError naming the offending column for mismatched lengths,
        non-finite values, non-positive errors or unknown band codes.
        """
        cols = [np.asarray(c, dtype=t) for c, t in zip(
            (source_id, mjd_tai, band, flux_njy, flux_err_njy, is_detection), cls.DTYPES)]
        n = len(cols[0])
        for name, col in zip(cls.FIELDS, cols):
            if col.shape != (n,):
                raise ValueError(f"{name}: shape {col.shape}, expected ({n},)")
        for name in ("mjd_tai", "flux_njy", "flux_err_njy"):
            col = cols[cls.FIELDS.index(name)]
            if not np.all(np.isfinite(col)):
                raise ValueError(f"{name}: {int(np.sum(~np.isfinite(col)))} non-finite value(s)")
        if np.any(cols[4] <= 0):
            raise ValueError("flux_err_njy: non-positive error(s)")
        if n and (cols[2].min() < 0 or cols[2].max() >= len(BAND_NAMES)):
            raise ValueError(f"band: code outside 0..{len(BAND_NAMES) - 1}")
        return cls._first_ids_by_time(cols)

    @classmethod
    def _first_ids_by_time(cls, cols: list[np.ndarray]) -> "LightCurve":
        """The curve of checked columns: the first point of each source id, sorted by time (stable)."""
        _, first = np.unique(cols[0], return_index=True)
        if len(first) == len(cols[0]):
            order = np.argsort(cols[1], kind="stable")
        else:
            keep = np.sort(first)
            order = keep[np.argsort(cols[1][keep], kind="stable")]
        return cls(*(col[order] for col in cols))

    @classmethod
    def empty(cls) -> "LightCurve":
        return cls(*(np.empty(0, dtype=t) for t in cls.DTYPES))

    @classmethod
    def concatenate(cls, curves) -> "LightCurve":
        """Merge curves of one object; repeated source ids keep their first occurrence.

        The curves' values are not checked again (`from_arrays` checks them once,
        where they enter): this runs once or twice per alert in the scoring loop.
        """
        curves = list(curves)
        if not curves:
            return cls.empty()
        return cls._first_ids_by_time([np.concatenate([getattr(c, f) for c in curves]) for f in cls.FIELDS])

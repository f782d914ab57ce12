"""`ScoredBatch`: a batch of scored alerts as arrays, what publishing, rules and state consume."""
from dataclasses import dataclass, fields, replace

import numpy as np

from models.context import CONTEXT_INDEX, valid_context


@dataclass(frozen=True)
class ScoredBatch:
    """Scores and context of B alerts, in input order.

    Attributes
    ----------
    object_id : list[str], alert_id : (B,) int64, source_id : (B,) int64, survey : (B,) str (object array)
    ra_deg, dec_deg : (B,) float64
        Position of the triggering source (ICRS, degrees).
    latest_mjd_tai : (B,) float64
        Time of the triggering source (MJD, TAI).
    latest_flux_njy : (B,) float32
        Difference flux of the triggering source (nJy).
    latest_band : (B,) int8
        Band code of the triggering source (`models.bands`).
    n_visits, n_detections : (B,) int32
        Points and detections in the scored window.
    probs : (B, C) float32
        Calibrated class probabilities, columns in `models.taxonomy.CLASS_IDS` order.
    sn_likelihood, flare_likelihood : (B,) float32
    model_version : str
    scored_ms : int
        When the forward pass finished (ms since the Unix epoch, UTC).
    context : (B, N_CONTEXT) float64
        Each alert's context (`models.context`), NaN where its packet does not say.
    window_first_detection_mjd_tai : (B,) float64
        First detection in the scored window (MJD TAI); NaN for a window without one.
    """

    object_id: list[str]
    alert_id: np.ndarray
    source_id: np.ndarray
    survey: np.ndarray
    ra_deg: np.ndarray
    dec_deg: np.ndarray
    latest_mjd_tai: np.ndarray
    latest_flux_njy: np.ndarray
    latest_band: np.ndarray
    n_visits: np.ndarray
    n_detections: np.ndarray
    probs: np.ndarray
    sn_likelihood: np.ndarray
    flare_likelihood: np.ndarray
    model_version: str
    scored_ms: int
    context: np.ndarray
    window_first_detection_mjd_tai: np.ndarray

    def __len__(self) -> int:
        return len(self.object_id)

    def select(self, keep: np.ndarray) -> "ScoredBatch":
        """The alerts where `keep` ((B,) bool) is true, in order."""
        if keep.all():
            return self
        rows = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model_version", "scored_ms")}
        return replace(self, **{name: [v for v, k in zip(values, keep) if k] if isinstance(values, list)
                                else values[keep] for name, values in rows.items()})

    def context_field(self, name: str) -> np.ndarray:
        """(B,) float64: one context field (`models.context.CONTEXT_FIELDS`), NaN where missing or absurd."""
        usable, _ = valid_context(self.context)
        column = CONTEXT_INDEX[name]
        return np.where(usable[:, column], self.context[:, column], np.nan)

    @property
    def age_days(self) -> np.ndarray:
        """(B,) float64: days from the source's first detection to this alert.

        The first detection is the earlier of the window's and the packet's own history
        (ZTF ``jdstarthist``), which reaches further back than the 30 days a ZTF packet carries.
        """
        first = np.fmin(self.window_first_detection_mjd_tai, self.context_field("first_detection_mjd_tai"))
        return self.latest_mjd_tai - first

    @property
    def latest_mag_ab(self) -> np.ndarray:
        """AB magnitude of |latest_flux_njy| (31.4 - 2.5 log10 nJy); NaN for zero flux."""
        with np.errstate(divide="ignore"):
            mag = 31.4 - 2.5 * np.log10(np.abs(self.latest_flux_njy.astype(np.float64)))
        return np.where(np.isfinite(mag), mag, np.nan)

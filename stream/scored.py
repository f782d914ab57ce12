"""`ScoredBatch`: a batch of scored alerts as arrays, what publishing, rules and state consume."""
from dataclasses import dataclass

import numpy as np


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

    def __len__(self) -> int:
        return len(self.object_id)

    @property
    def latest_mag_ab(self) -> np.ndarray:
        """AB magnitude of |latest_flux_njy| (31.4 - 2.5 log10 nJy); NaN for zero flux."""
        with np.errstate(divide="ignore"):
            mag = 31.4 - 2.5 * np.log10(np.abs(self.latest_flux_njy.astype(np.float64)))
        return np.where(np.isfinite(mag), mag, np.nan)

"""Do simulated ZTF supernovae look like real ones? Per-class light-curve statistics against the BTS.

The simulator's transient priors (`training.sim_transients`) were calibrated on these: for each
class, of simulated ZTF curves whose r-band peak is brighter than the Bright Transient Survey's
limit and of the real BTS train split, the median and 16-84 % range of

- ``rise_days``: first detection to the brightest r-band detection, days;
- ``gr_peak_mag``: g - r at that r-band peak (the g detection within 2.5 days), AB mag;
- ``gr_15d_mag``: g - r 15 days after it (both within 3 days of that time);
- ``decline_15d_mag_per_day``, ``decline_30d_mag_per_day``: r-band fading rate from the peak to
  15 and to 30 days after it;
- ``duration_days``: first to last detection.

Only detections are used, as the BTS file has nothing else. The BTS test split is never read.
"""
import numpy as np

from models.bands import AB_ZERO_POINT_NJY_MAG, BAND_NAMES
from models.lightcurve import LightCurve
from training.datasets import ztf_bts
from training.simulate import simulate

STATISTICS = ("rise_days", "gr_peak_mag", "gr_15d_mag", "decline_15d_mag_per_day", "decline_30d_mag_per_day",
              "duration_days")
SN_CLASSES = {2222: "SN Ia", 2223: "SN Ib/c", 2224: "SN II", 2242: "SLSN", 2243: "TDE"}
BTS_PEAK_LIMIT_MAG = 18.9  # BTS is complete to 18.5 mag; its peaks reach ~18.9 in the r band
_G, _R = BAND_NAMES.index("ztf-g"), BAND_NAMES.index("ztf-r")


def _mag(flux_njy) -> np.ndarray:
    return AB_ZERO_POINT_NJY_MAG - 2.5 * np.log10(np.clip(flux_njy, 1.0, None))


def _mag_near(mjd, band, mag, which: int, when: float, tolerance_days: float) -> float:
    """Magnitude of the `which`-band point nearest to `when`, NaN if none within `tolerance_days`."""
    in_band = np.flatnonzero(band == which)
    if not len(in_band):
        return np.nan
    nearest = in_band[np.argmin(np.abs(mjd[in_band] - when))]
    return float(mag[nearest]) if abs(mjd[nearest] - when) < tolerance_days else np.nan


def curve_statistics(curve: LightCurve) -> dict | None:
    """`STATISTICS` and ``peak_mag`` of one ZTF curve's detections; None with < 3 r or < 2 g detections."""
    det = curve.is_detection
    mjd, band, mag = curve.mjd_tai[det], curve.band[det], _mag(curve.flux_njy[det])
    if (band == _R).sum() < 3 or (band == _G).sum() < 2:
        return None
    peak = np.argmin(np.where(band == _R, mag, np.inf))
    peak_mjd, peak_mag = mjd[peak], mag[peak]

    def at(which, days, tolerance):
        return _mag_near(mjd, band, mag, which, peak_mjd + days, tolerance)

    return {
        "peak_mag": float(peak_mag),
        "rise_days": float(peak_mjd - mjd.min()),
        "gr_peak_mag": at(_G, 0.0, 2.5) - peak_mag,
        "gr_15d_mag": at(_G, 15.0, 3.0) - at(_R, 15.0, 3.0),
        "decline_15d_mag_per_day": (at(_R, 15.0, 3.0) - peak_mag) / 15.0,
        "decline_30d_mag_per_day": (at(_R, 30.0, 4.0) - peak_mag) / 30.0,
        "duration_days": float(mjd.max() - mjd.min()),
    }


def class_statistics(curves, class_ids, brighter_than_mag: float | None = None) -> dict:
    """``{class name: {"n": objects, statistic: [p16, p50, p84]}}`` over the `SN_CLASSES` curves.

    Curves whose r-band peak is fainter than `brighter_than_mag` are left out (None: keep all).
    """
    rows: dict[int, list[dict]] = {}
    for curve, class_id in zip(curves, np.asarray(class_ids).tolist()):
        if class_id not in SN_CLASSES:
            continue
        stats = curve_statistics(curve)
        if stats is not None and (brighter_than_mag is None or stats["peak_mag"] < brighter_than_mag):
            rows.setdefault(class_id, []).append(stats)
    out = {}
    for class_id, name in SN_CLASSES.items():
        found = rows.get(class_id, [])
        out[name] = {"n": len(found)}
        for key in STATISTICS:
            values = np.array([r[key] for r in found], dtype=np.float64)
            values = values[np.isfinite(values)]
            out[name][key] = np.percentile(values, [16, 50, 84]).tolist() if len(values) else None
    return out


def simulated_vs_bts(n_per_class: int = 2000, seed: int = 0, data_dir=None) -> dict:
    """`class_statistics` of simulated ZTF SNe brighter than `BTS_PEAK_LIMIT_MAG` and of the BTS train split."""
    sims = simulate(n_per_class * len(SN_CLASSES), np.random.default_rng(seed), "ztf", classes=list(SN_CLASSES))
    bts = ztf_bts("train", data_dir=data_dir, service_form=False)
    return {"simulated": class_statistics(list(sims), sims.class_id, BTS_PEAK_LIMIT_MAG),
            "bts_train": class_statistics(bts.curves, bts.class_ids)}


def format_comparison(report: dict) -> str:
    """Medians, simulated / BTS, one line per class."""
    lines = ["simulated ZTF (peak < %.1f mag) / BTS train, medians" % BTS_PEAK_LIMIT_MAG,
             f"{'class':8s} {'n':>9s} " + " ".join(f"{k:>24s}" for k in STATISTICS)]
    for name in SN_CLASSES.values():
        sim, real = report["simulated"][name], report["bts_train"][name]

        def cell(key):
            a, b = sim[key], real[key]
            return f"{a[1]:.3f} / {b[1]:.3f}" if a is not None and b is not None else "-"

        lines.append(f"{name:8s} {sim['n']:>4d}/{real['n']:<4d} " + " ".join(f"{cell(k):>24s}" for k in STATISTICS))
    return "\n".join(lines)

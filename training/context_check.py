"""Do simulated alert contexts look like real ones? Per kind of source, field by field.

`training.sim_context` draws each simulated ZTF curve's context from the train part of
the real packets, jittered, with the detection history set against the simulated
curve. This compares those draws with the contexts of the held-out test part, which the
draws never saw: per group of sources (`GROUPS`) and field (with `HISTORY_DAYS`, the days a source
was detected before its window, as the model is shown its first detection), the medians, the
two-sample Kolmogorov-Smirnov statistic and its p-value, and histograms in one figure.
"""
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp

from models.context import CONTEXT_INDEX, valid_context
from stream.window import first_detection_mjd_tai
from training.datasets import simulated
from training.real_packets import packet_windows, ztf_packets
from training.sim_context import CONTEXT_SOURCES

# group -> (simulated classes, real labels); the real labels are those the classes draw from
GROUPS: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    "transients": ((2222, 2223, 2224, 2242, 2243, 2232), CONTEXT_SOURCES[2222]),
    "AGN": ((2332,), CONTEXT_SOURCES[2332]),
    "stars and CVs": ((2233, 2234, 2323, 2325), CONTEXT_SOURCES[2234]),
    "asteroids": ((9000,), CONTEXT_SOURCES[9000]),
}
HISTORY_DAYS = "history_days"  # derived: days the source was detected before its window (the model's feature)
# field -> (transform for comparing and plotting, axis label)
FIELDS = {
    "real_bogus": (lambda x: x, "real/bogus"),
    "star_score": (lambda x: x, "star score (sgscore1)"),
    "star_distance_arcsec": (lambda x: np.log10(np.minimum(x, 100.0)), "log10 star distance / arcsec"),
    "ss_distance_arcsec": (lambda x: np.log10(np.minimum(x, 100.0)), "log10 asteroid distance / arcsec (2 = none)"),
    "gaia_distance_arcsec": (lambda x: np.log10(np.minimum(x, 100.0)), "log10 Gaia distance / arcsec"),
    "ref_mag_ab": (lambda x: x, "reference source mag (AB)"),
    HISTORY_DAYS: (lambda x: np.log10(1.0 + x), "log10(1 + days detected before the window)"),
}
MIN_VALUES = 5  # fewer usable values on either side: no statistic


def window_history_days(curves, contexts: np.ndarray) -> np.ndarray:
    """(N,) days between each source's first detection ever (the context's ``first_detection_mjd_tai``) and
    the first detection of its curve, as the model is shown it (`models.encode.context_features`: never
    negative); NaN where the context does not say."""
    return np.maximum(first_detection_mjd_tai(curves) - contexts[:, CONTEXT_INDEX["first_detection_mjd_tai"]], 0.0)


def _values(contexts: np.ndarray, curves, field: str) -> np.ndarray:
    """The usable values of `field` (a context field, or `HISTORY_DAYS` of each curve's window), transformed."""
    usable, _ = valid_context(contexts)
    if field == HISTORY_DAYS:
        known, raw = usable[:, CONTEXT_INDEX["first_detection_mjd_tai"]], window_history_days(curves, contexts)
    else:
        known, raw = usable[:, CONTEXT_INDEX[field]], contexts[:, CONTEXT_INDEX[field]]
    transform, _ = FIELDS[field]
    with np.errstate(divide="ignore"):
        values = transform(raw[known])
    return values[np.isfinite(values)]


def context_comparison(split: str = "test", n_sim: int = 2400, seed: int = 0, data_dir=None) -> dict:
    """``{group: {field: {n_real, n_sim, median_real, median_sim, ks, p_value}}}`` plus the values for plotting
    under ``"_values"`` (dropped before the report is written)."""
    windows = packet_windows(ztf_packets(split, data_dir))
    labels = np.asarray(windows.labels, dtype=object)
    sims = simulated("val", n_sim, seed, "ztf")
    report, values = {}, {}
    for group, (class_ids, real_labels) in GROUPS.items():
        real = np.flatnonzero(np.isin(labels, real_labels))
        sim = np.flatnonzero(np.isin(sims.class_ids, class_ids))
        real_curves, sim_curves = [windows.curves[i] for i in real], [sims.curves[i] for i in sim]
        report[group], values[group] = {}, {}
        for field in FIELDS:
            r = _values(windows.contexts[real], real_curves, field)
            s = _values(sims.contexts[sim], sim_curves, field)
            values[group][field] = (r, s)
            enough = min(len(r), len(s)) >= MIN_VALUES
            ks = ks_2samp(r, s) if enough else None
            report[group][field] = {
                "n_real": int(len(r)), "n_sim": int(len(s)),
                "median_real": float(np.median(r)) if len(r) else None,
                "median_sim": float(np.median(s)) if len(s) else None,
                "ks": float(ks.statistic) if ks else None, "p_value": float(ks.pvalue) if ks else None}
    report["_values"] = values
    return report


def plot_context_comparison(report: dict, path: Path) -> Path:
    """Histograms, real (test packets) against simulated, one row per group and one column per field."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = report["_values"]
    fig, axes = plt.subplots(len(GROUPS), len(FIELDS), figsize=(3.2 * len(FIELDS), 2.4 * len(GROUPS)))
    for row, group in enumerate(GROUPS):
        for col, field in enumerate(FIELDS):
            ax = axes[row, col]
            real, sim = values[group][field]
            both = np.concatenate([real, sim])
            low, high = (both.min(), both.max()) if len(both) else (0.0, 1.0)
            bins = np.linspace(low, high, 21) if high - low > 1e-6 else np.linspace(low - 0.5, low + 0.5, 3)
            if len(sim):  # an empty histogram has no density (0 / 0)
                ax.hist(sim, bins=bins, density=True, alpha=0.5, label=f"simulated ({len(sim)})")
            if len(real):
                ax.hist(real, bins=bins, density=True, histtype="step", linewidth=1.5,
                        label=f"real test ({len(real)})")
            ks = report[group][field]["ks"]
            ax.set_title(f"{group}: KS {ks:.2f}" if ks is not None else group, fontsize=8)
            ax.set_xlabel(FIELDS[field][1], fontsize=7)
            ax.tick_params(labelsize=6)
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def format_context_comparison(report: dict) -> str:
    """One line per group and field: medians and the KS statistic."""
    lines = ["alert context, real test packets vs simulated ZTF draws (median real / sim, KS, p)"]
    for group in GROUPS:
        for field, m in report[group].items():
            if m["ks"] is None:
                lines.append(f"  {group:14s} {field:22s} n {m['n_real']:4d} / {m['n_sim']:4d}: too few values")
                continue
            lines.append(f"  {group:14s} {field:22s} n {m['n_real']:4d} / {m['n_sim']:4d}  median "
                         f"{m['median_real']:7.2f} / {m['median_sim']:7.2f}  KS {m['ks']:.2f}  p {m['p_value']:.3f}")
    return "\n".join(lines)

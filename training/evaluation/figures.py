"""The evaluation's PNG figures, drawn from its report (matplotlib, Agg backend: files only)."""
from pathlib import Path

import numpy as np

from models.taxonomy import CLASS_NAMES
from training.evaluation.sets import DAY_CUTS, N_DET_CUTS

CONFUSION_CUTS = ("n_det=1", "n_det=3", "n_det=all")
RELIABILITY_CUTS = ("n_det=3", "n_det=all")
_MODEL_COLORS = {"transformer": "tab:blue", "features": "tab:orange", "supernnova": "tab:green"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _models_of(per_cond: dict) -> list[str]:
    return list(dict.fromkeys(m for entry in per_cond.values() for m, rep in entry["models"].items() if rep.get("n")))


def _figure_confusion(per_cond: dict, set_name: str, path: Path) -> None:
    """Row-normalised confusion matrices (recall on the diagonal): models x N_det cuts."""
    plt = _pyplot()
    models = _models_of(per_cond)
    fig, axes = plt.subplots(len(models), len(CONFUSION_CUTS), figsize=(4.2 * len(CONFUSION_CUTS), 4.0 * len(models)),
                             squeeze=False, constrained_layout=True)
    for r, model in enumerate(models):
        for c, cond in enumerate(CONFUSION_CUTS):
            ax = axes[r, c]
            rep = per_cond[cond]["models"].get(model, {})
            if not rep.get("n"):
                ax.set_axis_off()
                continue
            cm = np.asarray(rep["confusion_matrix"], dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                norm = cm / cm.sum(axis=1, keepdims=True)
            ax.imshow(np.nan_to_num(norm), vmin=0, vmax=1, cmap="Blues")
            for i, j in zip(*np.nonzero(cm)):
                ax.text(j, i, f"{norm[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize=5,
                        color="white" if norm[i, j] > 0.5 else "black")
            ticks = np.arange(len(CLASS_NAMES))
            ax.set_xticks(ticks, CLASS_NAMES, rotation=90, fontsize=6)
            ax.set_yticks(ticks, CLASS_NAMES, fontsize=6)
            f1 = rep["macro_f1"]
            ax.set_title(f"{model}, {cond} (n={rep['n']}, macro-F1 {f1:.3f})" if f1 is not None else
                         f"{model}, {cond} (n={rep['n']})", fontsize=8)
            ax.set_xlabel("predicted", fontsize=7)
            ax.set_ylabel("true", fontsize=7)
    fig.suptitle(f"{set_name}: confusion matrices, rows normalised to recall")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figure_reliability(per_cond: dict, set_name: str, path: Path) -> None:
    """Top-label reliability diagrams: accuracy against confidence per bin, with each model's ECE."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(RELIABILITY_CUTS), figsize=(5 * len(RELIABILITY_CUTS), 4.6), squeeze=False,
                             constrained_layout=True)
    for ax, cond in zip(axes[0], RELIABILITY_CUTS):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        for model, rep in per_cond[cond]["models"].items():
            if not rep.get("n"):
                continue
            rel = rep["reliability"]
            count = np.asarray(rel["count"])
            used = count > 0
            conf = np.asarray([np.nan if v is None else v for v in rel["confidence"]], dtype=np.float64)[used]
            acc = np.asarray([np.nan if v is None else v for v in rel["accuracy"]], dtype=np.float64)[used]
            ax.plot(conf, acc, marker="o", ms=3, color=_MODEL_COLORS.get(model),
                    label=f"{model} (ECE {rep['ece']:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{cond} (n={per_cond[cond]['n_curves']})")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{set_name}: reliability")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figure_curves(per_cond: dict, set_name: str, path: Path) -> None:
    """Macro-F1, SN-vs-rest and flare-vs-rest PR-AUC and ECE against N_det (top) and days (bottom)."""
    plt = _pyplot()
    panels = (("macro-F1", lambda r: r["macro_f1"]), ("SN-vs-rest PR-AUC", lambda r: r["sn_vs_rest"]["pr_auc"]),
              ("flare-vs-rest PR-AUC", lambda r: r["flare_vs_rest"]["pr_auc"]), ("ECE", lambda r: r["ece"]))
    rows = (("N_det", [f"n_det={n}" for n in N_DET_CUTS], [str(n) for n in N_DET_CUTS]),
            ("days after first detection", [f"days={d:g}" for d in DAY_CUTS], [f"{d:g}" for d in DAY_CUTS]))
    fig, axes = plt.subplots(2, len(panels), figsize=(4 * len(panels), 7), constrained_layout=True)
    for r, (xlabel, conds, ticks) in enumerate(rows):
        for c, (title, get) in enumerate(panels):
            ax = axes[r, c]
            for model in _models_of(per_cond):
                y = [get(per_cond[k]["models"][model]) if per_cond[k]["models"].get(model, {}).get("n") else None
                     for k in conds]
                y = np.array([np.nan if v is None else v for v in y], dtype=np.float64)
                ax.plot(np.arange(len(conds)), y, marker="o", color=_MODEL_COLORS.get(model), label=model)
            ax.set_xticks(np.arange(len(conds)), ticks)
            ax.set_xlabel(xlabel)
            ax.set_title(title)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{set_name}: metrics as the light curve grows")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figure_throughput(throughput: dict, config: dict, path: Path) -> None:
    plt = _pyplot()
    models = list(throughput)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    x = np.arange(len(models))
    for k, (key, label) in enumerate((("curves_per_s", "all prefixes"), ("whole_curves_per_s", "whole curves"))):
        vals = [throughput[m][key] or 0.0 for m in models]
        bars = ax.bar(x + (k - 0.5) * 0.38, vals, width=0.38, label=label)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in vals], fontsize=7)
    ax.set_xticks(x, models)
    ax.set_yscale("log")
    where = "GPU for the transformer, " if config.get("device") == "cuda" else ""
    ax.set_ylabel(f"light curves / s ({where}{config.get('threads')} CPU thread(s))")
    ax.set_title("inference throughput, preprocessing included")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_figures(report: dict, out_dir: Path) -> list[str]:
    """Write every PNG of the report into ``out_dir``; returns their file names."""
    out_dir = Path(out_dir)
    names = []
    for set_name, per_cond in report["results"].items():
        for stem, draw in (("confusion", _figure_confusion), ("reliability", _figure_reliability),
                           ("metrics", _figure_curves)):
            name = f"{stem}_{set_name}.png"
            draw(per_cond, set_name, out_dir / name)
            names.append(name)
    if report["throughput"]:
        _figure_throughput(report["throughput"], report["config"], out_dir / "throughput.png")
        names.append("throughput.png")
    return names

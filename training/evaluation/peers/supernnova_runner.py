"""Run SuperNNova (Möller & de Boissière 2020) for `training.evaluation.peers.supernnova.SuperNNovaPeer`.

This script runs **inside SuperNNova's own virtual environment** (it pins
astropy<6, which the project cannot take), so it imports nothing from
alertformer: the two sides talk through files. ``-P`` keeps this directory, which
holds the peer's own ``supernnova.py``, off ``sys.path``. It is not meant to be called by
hand; `SuperNNovaPeer` writes the job file and reads the result.

Usage::

    python -P supernnova_runner.py train JOB.json
    python -P supernnova_runner.py predict JOB.json

``train`` job keys: ``dump_dir`` (SuperNNova's working directory), ``raw_dir``
(``*_HEAD.csv`` with SNID, SNTYPE, PEAKMJD and ``*_PHOT.csv`` with SNID, MJD,
FLUXCAL, FLUXCALERR, FLT), ``testing_ids`` (CSV with an SNID column: the
curves SuperNNova keeps out of training and validation), ``sntypes``
({SNTYPE: class name}, in output-column order), ``list_filters``,
``nb_epoch``, ``batch_size``, ``hidden_dim``, ``norm``, ``seed``, ``use_cuda`` and
``result`` (where to write ``{"model_file": ..., "train_seconds": ...}``).

``predict`` job keys: ``model_file``, ``sets`` ({name: PHOT csv path}),
``device`` and ``result``, which gets ``{name: {"snid": [...], "probs":
[[...]], "seconds": s}}``: ``probs`` is the mean over inference samples, one
column per class in ``sntypes`` order, ``seconds`` the wall time of
SuperNNova's on-the-fly classification (formatting included, imports not).

SuperNNova starts ``cpu_count() - 2`` worker processes while building its
data set, which is 0 (and an error) on a 2-core machine: `main` raises the
count it sees to at least 3 before importing it.
"""
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

_MIN_CPU_COUNT = 3  # SuperNNova uses cpu_count() - 2 workers; it needs at least one


def _patch_cpu_count() -> None:
    real = os.cpu_count() or 1
    if real < _MIN_CPU_COUNT:
        multiprocessing.cpu_count = lambda: _MIN_CPU_COUNT


def _settings(action: str, argv: list[str]):
    """SuperNNova's settings object for ``snn ACTION argv`` (it parses sys.argv itself)."""
    from supernnova import conf

    saved = sys.argv
    sys.argv = ["snn", *argv]
    try:
        return conf.get_settings(action)
    finally:
        sys.argv = saved


def train(job: dict) -> dict:
    """Build SuperNNova's database from the raw CSVs, then train its RNN (`train_rnn.train`).

    The steps of ``snn make_data`` then ``snn train_rnn`` without the plots
    and the test-set metrics that ``snn`` adds, which this evaluation does
    itself on its own prefixes.
    """
    import numpy as np
    import torch
    from supernnova.data import make_dataset
    from supernnova.training import train_rnn

    common = ["--dump_dir", job["dump_dir"], "--seed", str(job["seed"]), "--norm", job.get("norm", "global"),
              "--sntypes", json.dumps(job["sntypes"]), "--list_filters", *job["list_filters"]]
    if job.get("use_cuda"):
        common.append("--use_cuda")
    np.random.seed(job["seed"])
    torch.manual_seed(job["seed"])
    settings = _settings("make_data", [*common, "--raw_dir", job["raw_dir"], "--testing_ids", job["testing_ids"]])
    make_dataset.make_dataset(settings)

    n_classes = len(dict.fromkeys(job["sntypes"].values()))
    settings = _settings("train_rnn", [
        *common, "--nb_classes", str(n_classes), "--nb_epoch", str(job["nb_epoch"]),
        "--batch_size", str(job["batch_size"]), "--hidden_dim", str(job["hidden_dim"])])
    make_dataset.resolve_sntypes(settings)
    start = time.perf_counter()
    train_rnn.train(settings)
    model_file = Path(settings.rnn_dir) / f"{settings.pytorch_model_name}.pt"
    if not model_file.is_file():
        raise FileNotFoundError(f"SuperNNova finished training but wrote no model at {model_file}")
    return {"model_file": str(model_file), "train_seconds": time.perf_counter() - start,
            "n_classes": n_classes, "validation": _last_validation(settings)}


def _last_validation(settings) -> dict:
    """SuperNNova's validation summary (best accuracy, lowest loss) from its ``training_log.json``."""
    try:
        log = json.loads((Path(settings.rnn_dir) / "training_log.json").read_text())
        best = log[settings.pytorch_model_name]
        return {"val_accuracy": best.get("Acc"), "val_loss": best.get("loss")}
    except (OSError, KeyError, ValueError):
        return {}


def predict(job: dict) -> dict:
    """Classify each set of light curves with `validate_onthefly.classify_lcs`."""
    import numpy as np
    import pandas as pd
    from supernnova.validation.validate_onthefly import classify_lcs

    out = {}
    for name, phot_csv in job["sets"].items():
        df = pd.read_csv(phot_csv, dtype={"SNID": str, "FLT": str})
        start = time.perf_counter()
        ids, preds = classify_lcs(df, job["model_file"], job.get("device", "cpu"))  # preds (B, samples, C)
        seconds = time.perf_counter() - start
        out[name] = {"snid": [str(i) for i in ids], "probs": np.asarray(preds).mean(axis=1).tolist(),
                     "seconds": seconds}
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("train", "predict"):
        print(__doc__, file=sys.stderr)
        return 2
    _patch_cpu_count()
    job = json.loads(Path(argv[1]).read_text())
    result = train(job) if argv[0] == "train" else predict(job)
    Path(job["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The SuperNNova peer: its RNN trained and run in its own environment, through files."""
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from models.bands import BAND_NAMES
from models.lightcurve import LightCurve
from models.taxonomy import CLASS_IDS, CLASS_NAMES, N_CLASSES, class_indices
from training.evaluation.peers.snana import FILTER_LETTER, write_csv, write_snana_csv
from training.evaluation.peers.supernnova_env import DEFAULT_SUPERNNOVA_VENV, SuperNNovaError, ensure_supernnova_venv

log = logging.getLogger(__name__)

RUNNER = Path(__file__).with_name("supernnova_runner.py")
# The runner sits beside this module, named like SuperNNova's package: ``python -P`` (3.11+) keeps the
# script's directory off sys.path, so its ``import supernnova`` finds SuperNNova, not this file.
RUNNER_PYTHON_FLAGS = ("-P",)
# Class names for SuperNNova's --sntypes, in CLASS_IDS order (its output columns follow that order,
# with the "Ia" target first, which CLASS_IDS[0] is).
_SNN_TYPE_NAMES = {cid: name.replace(" ", "").replace("/", "") for cid, name in zip(CLASS_IDS, CLASS_NAMES)}


class SuperNNovaPeer:
    """SuperNNova's RNN (an LSTM; defaults of its ``train_rnn``), run in its own environment.

    `fit` writes the training curves as SNANA CSV, runs the data-set build
    and training in the subprocess, and keeps the model file; `predict_sets`
    classifies any number of named sets in one subprocess (SuperNNova's
    on-the-fly classifier), so its import cost is paid once, and reports the
    runner's own timing of each set. SuperNNova groups observations less than
    8 hours apart into one time step and trains on random-length sequences.

    Its data-set builder needs a test split: the first 20 training curves are
    copied under new ids to serve as it (their SuperNNova test metrics are
    never read), so nothing is withheld from training; SuperNNova itself keeps
    10 % of the training curves for validation (early stopping and learning
    rate schedule).

    Parameters
    ----------
    work_dir : str or Path, optional
        Where the CSVs, SuperNNova's database and model go; default a new
        temporary directory.
    venv_dir : str or Path
        Its environment (`ensure_supernnova_venv`).
    nb_epoch, batch_size, hidden_dim : int
        SuperNNova training settings, its own defaults (90 epochs, stopped
        early on a validation plateau; 128; 32). On 2 idle cores an epoch of
        5,000 simulated LSST curves takes ~5 s.
    norm : str
        SuperNNova's flux normalisation (``--norm``). Default ``"cosmo"`` (each
        curve's fluxes over its maximum), not SuperNNova's ``"global"``
        (``log(flux - min)`` with the training set's minimum): variable stars'
        difference fluxes reach -8e4 FLUXCAL (RR Lyrae and EBs below their
        template), which makes ``log(flux - min)`` flat for every supernova.
        On SuperNNova's own validation split of 1,500 simulated LSST curves,
        "global" reached 19 % accuracy after 30 epochs, "cosmo" 41 % after 15.
    seed : int
    device : str
        ``"cpu"`` or ``"cuda"``.
    torch_threads : int
        CPU threads of SuperNNova's torch. Default 1: on this 2-core machine,
        with other processes busy, 2 threads made an epoch ~30x slower than
        on an idle machine (2.5 min against 5 s), the OpenMP spin-wait
        trouble `FeatureBaseline` has too.
    timeout_s : float
        Limit for each subprocess.
    """

    name = "supernnova"

    def __init__(self, work_dir=None, venv_dir=DEFAULT_SUPERNNOVA_VENV, nb_epoch: int = 90,
                 batch_size: int = 128, hidden_dim: int = 32, norm: str = "cosmo", seed: int = 0,
                 device: str = "cpu", torch_threads: int = 1, timeout_s: float = 4 * 3600.0):
        # Absolute: the runner runs with this as its working directory and gets paths in it.
        work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="supernnova-"))
        self.work_dir = work_dir.resolve()
        self.venv_dir = Path(venv_dir)
        self.nb_epoch = nb_epoch
        self.batch_size = batch_size
        self.hidden_dim = hidden_dim
        self.norm = norm
        self.seed = seed
        self.device = device
        self.torch_threads = torch_threads
        self.timeout_s = timeout_s
        self.model_file: str | None = None
        self.filters: list[str] = []
        self.train_seconds: float | None = None
        self.validation: dict = {}  # SuperNNova's own validation accuracy and loss (its 10 % split)
        self._python: Path | None = None

    def _run(self, action: str, job: dict) -> dict:
        if self._python is None:
            self._python = ensure_supernnova_venv(self.venv_dir)
        job_path = self.work_dir / f"{action}_job.json"
        job["result"] = str(self.work_dir / f"{action}_result.json")
        Path(job["result"]).unlink(missing_ok=True)
        job_path.write_text(json.dumps(job))
        log_path = self.work_dir / f"{action}.log"
        log.info("SuperNNova %s running log=%s", action, log_path)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the runner imports nothing of ours
        env.update(MPLBACKEND="Agg", PYTHONWARNINGS="ignore", OMP_NUM_THREADS=str(self.torch_threads),
                   MKL_NUM_THREADS=str(self.torch_threads))
        with open(log_path, "w") as log_file:
            try:
                done = subprocess.run([str(self._python), *RUNNER_PYTHON_FLAGS, str(RUNNER), action, str(job_path)],
                                      cwd=self.work_dir, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                      timeout=self.timeout_s)
            except subprocess.TimeoutExpired as err:
                raise SuperNNovaError(f"SuperNNova {action}: timed out after {self.timeout_s:.0f} s "
                                      f"(log: {log_path})") from err
        if done.returncode != 0 or not Path(job["result"]).is_file():
            tail = "\n".join(log_path.read_text(errors="replace").strip().splitlines()[-20:])
            raise SuperNNovaError(f"SuperNNova {action} exited {done.returncode} (log: {log_path}):\n{tail}")
        return json.loads(Path(job["result"]).read_text())

    def fit(self, curves: Sequence[LightCurve], class_ids) -> "SuperNNovaPeer":
        """Train SuperNNova on ``curves`` labelled with ELAsTiCC2 ``class_ids``."""
        curves = list(curves)
        class_ids = np.asarray(class_ids, dtype=np.int64)
        class_indices(class_ids)  # fail early on an unknown class
        self.filters = sorted({FILTER_LETTER[BAND_NAMES[int(b)]] for c in curves for b in np.unique(c.band)})
        self.work_dir.mkdir(parents=True, exist_ok=True)
        raw = self.work_dir / "raw"
        if raw.exists():
            shutil.rmtree(raw)
        raw.mkdir(parents=True)
        dump = self.work_dir / "dump"
        if dump.exists():
            shutil.rmtree(dump)
        n_dummy = min(20, len(curves))
        snids = [f"t{i}" for i in range(len(curves))] + [f"d{i}" for i in range(n_dummy)]
        write_snana_csv(raw / "train_PHOT.csv", curves + curves[:n_dummy], snids,
                        head_path=raw / "train_HEAD.csv", class_ids=np.r_[class_ids, class_ids[:n_dummy]])
        write_csv(self.work_dir / "testing_ids.csv", ("SNID",), (np.asarray(snids[len(curves):], dtype=object),))
        result = self._run("train", {
            "dump_dir": str(dump), "raw_dir": str(raw), "testing_ids": str(self.work_dir / "testing_ids.csv"),
            "sntypes": {str(cid): _SNN_TYPE_NAMES[cid] for cid in CLASS_IDS}, "list_filters": self.filters,
            "nb_epoch": self.nb_epoch, "batch_size": self.batch_size, "hidden_dim": self.hidden_dim,
            "norm": self.norm, "seed": self.seed, "use_cuda": self.device.startswith("cuda"),
        })
        if result.get("n_classes") != N_CLASSES:
            raise SuperNNovaError(f"SuperNNova trained {result.get('n_classes')} classes, expected {N_CLASSES}")
        self.model_file = result["model_file"]
        self.train_seconds = result["train_seconds"]
        self.validation = result.get("validation", {})
        log.info("SuperNNova trained seconds=%.0f validation=%s", self.train_seconds, self.validation)
        return self

    def predict_sets(self, sets: Mapping[str, Sequence[LightCurve]]) -> dict[str, tuple[np.ndarray, float]]:
        """Probabilities (N, C) of each named set and SuperNNova's inference seconds for it."""
        if self.model_file is None:
            raise RuntimeError("SuperNNovaPeer: call fit first")
        paths, snid_lists = {}, {}
        for k, (name, curves) in enumerate(sets.items()):
            if not len(curves):
                continue
            snids = [f"s{i}" for i in range(len(curves))]
            paths[name] = self.work_dir / f"predict_{k}_PHOT.csv"
            write_snana_csv(paths[name], list(curves), snids)
            snid_lists[name] = snids
        result = self._run("predict", {"model_file": self.model_file, "device": self.device,
                                       "sets": {name: str(p) for name, p in paths.items()}}) if paths else {}
        out = {}
        for name, curves in sets.items():
            if name not in result:
                out[name] = (np.zeros((0, N_CLASSES)), 0.0)
                continue
            row_of = {s: i for i, s in enumerate(result[name]["snid"])}
            probs = np.asarray(result[name]["probs"], dtype=np.float64)[[row_of[s] for s in snid_lists[name]]]
            out[name] = (probs, float(result[name]["seconds"]))
        for p in paths.values():
            p.unlink(missing_ok=True)
        return out

    def predict_proba(self, curves: Sequence[LightCurve]) -> np.ndarray:
        """(N, C) probabilities in `CLASS_IDS` order."""
        return self.predict_sets({"curves": curves})["curves"][0]

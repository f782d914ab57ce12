"""The training recipe: pretrain -> fine-tune (sim) -> calibrate -> fine-tune (ZTF BTS) -> calibrate -> save.

Run it as ``alertformer train [--config FILE] [--key=value ...]``:

- the defaults are the plain globals below (the shipped recipe, restated in
  ``training/config/default.py``);
- ``--config FILE`` executes a Python file of plain assignments
  (``training/config/smoke.py``) over them;
- ``--key=value`` overrides come last. An unknown key, or a value of another
  type than the default's (an int is accepted for a float), is an error.

The resolved config is logged, written to ``<work_dir>/config.json`` and saved
in the checkpoint's ``train_config``. Stages:

1. `training.pretrain.pretrain`: masked flux reconstruction on the simulated
   train curves (LSST and ZTF, labels unused), random prefixes.
2. `training.finetune.finetune` on the same simulated curves with labels,
   class-balanced, a fresh optimizer; then `calibrate` on simulated val.
3. `finetune` on the real ZTF BTS train split, replaying simulated curves in
   every batch (the BTS lacks flares, variables, kilonovae), early-stopped on
   BTS val + simulated val; then `calibrate` on both val sets.
4. Metrics on the val splits (never the test splits) and `save_checkpoint`
   with the config, data sizes, seeds, metrics, wall time and git sha.
"""
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import torch

from models.errors import ConfigError

# -----------------------------------------------------------------------------
# default config values: the shipped recipe (training/config/default.py restates it)
# I/O and system
out_path = "models/shipped/alertformer.pt"  # the final checkpoint
work_dir = "out/train"  # config.json, metrics.json, stage checkpoints
seed = 0
device = "auto"  # "auto": cuda if available, else cpu
# a checkpoint whose weights start the run ("" = a fresh model); with pretrain_iters = finetune_iters = 0
# it reruns stage 3 alone from a saved stage-2 checkpoint (e.g. out/train/finetune_sim.pt)
init_from = ""
# torch CPU threads; 0 keeps torch's default. 1 on the shared 2-core machine: when another process
# holds a core, a second torch thread waits at every barrier (steps of 0.1 s took up to 5 s).
num_threads = 1
progress = True  # tqdm progress bars
log_interval = 50  # steps between training-loss readings (each is a device sync)
n_chunks = 4  # forward each step in 4 length-sorted chunks: ~half the padded tokens, same loss
# data
n_sim_train = 20000  # simulated train curves per survey (lsst and ztf), balanced classes
n_sim_val = 2200  # simulated val curves per survey (200 per class)
sim_mix = "balanced"  # or "realistic"
use_bts = True  # stage 3 on the real ZTF BTS train split
# stage 3 (with use_bts) also on the real ZTF packets' train part, as the service windows them (training.real_packets)
use_real_packets = True
# stage 3 also shows each BTS train curve in its published form (the file's detections alone, no
# context), beside the service form (simulated ZTF limits, a drawn SN context)
bts_both_forms = False
bts_val_draws = 4  # random prefixes per BTS val object (270 objects: more draws, less noise)
data_dir = ""  # data directory holding labeled/; "" = $ALERTFORMER_DATA or the repository's data/
# model (models.model.ModelConfig)
d_model = 64
n_heads = 4
n_layers = 4
dropout = 0.1
max_visits = 64
n_time_freqs = 16
# augmentation (training.prefixes.prefix_batch)
prefix_scheme = "log"  # cut at k detections with P(k) ~ 1/k; "uniform" for uniform among detections
drop_nondetections_prob = 0.3  # share of curves shown with detections only
# share of curves shown without their alert context: without it, a model trained with contexts
# everywhere scored real BTS curves passed without one (the Python API's case) all as one class
drop_context_prob = 0.3
# flux and error x 10**U(-0.4, 0.4) per training curve: the simulated ZTF errors are ~2.5x smaller than
# real ones, and the error scale alone sent real BTS supernovae to the EB class (training.prefixes.prefix_batch)
scale_jitter_dex = 0.4
# optimizer, every stage
weight_decay = 0.1
grad_clip = 1.0
# stage 1: pretraining
pretrain_iters = 800
pretrain_batch_size = 128
pretrain_lr = 1e-3
pretrain_min_lr = 1e-4
pretrain_warmup_iters = 50
mask_fraction = 0.15
pretrain_eval_interval = 200
pretrain_eval_curves = 1000
# stage 2: fine-tuning on simulations
finetune_iters = 6000
finetune_batch_size = 128
finetune_lr = 1e-3
finetune_min_lr = 5e-5
finetune_warmup_iters = 100
finetune_eval_interval = 500
# stage 3: fine-tuning on ZTF BTS with simulated replay
bts_iters = 2000
bts_batch_size = 128
bts_lr = 5e-4
bts_min_lr = 3e-5
bts_warmup_iters = 50
bts_replay_fraction = 0.5  # share of each batch drawn from the simulated train set
bts_eval_interval = 100
bts_patience = 5  # evaluations without improvement before stopping
class_weight_max_ratio = 20.0  # class-balanced loss: largest weight at most this x the smallest
calibrate = True  # fit the temperature after stages 2 and 3
# -----------------------------------------------------------------------------
DEFAULTS: dict = {k: v for k, v in globals().items()
                  if not k.startswith("_") and isinstance(v, (bool, int, float, str))}

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(__file__).resolve().parent / "config"


def _coerce(key: str, value, where: str):
    """``value`` checked against the default's type (int accepted for float); ConfigError otherwise."""
    if key not in DEFAULTS:
        raise ConfigError(f"{where}: unknown config key {key!r}; known keys: {', '.join(sorted(DEFAULTS))}")
    kind = type(DEFAULTS[key])
    if kind is float and type(value) is int:
        return float(value)
    if type(value) is not kind:
        raise ConfigError(f"{where}: {key}={value!r} is {type(value).__name__}, the default "
                          f"{DEFAULTS[key]!r} is {kind.__name__}")
    return value


def parse_value(key: str, text: str):
    """A command-line string as the type of ``key``'s default (``"True"``/``"false"``/``"1"`` for bools)."""
    if key not in DEFAULTS:
        raise ConfigError(f"command line: unknown config key {key!r}; known keys: {', '.join(sorted(DEFAULTS))}")
    kind = type(DEFAULTS[key])
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes")
        return kind(text)
    except ValueError:
        raise ConfigError(f"command line: {key}={text!r} is not a {kind.__name__}") from None


def load_recipe(config_file=None, overrides: dict | None = None, argv_overrides=()) -> dict:
    """The resolved config: defaults, then ``config_file``, then overrides.

    Parameters
    ----------
    config_file : str or Path, optional
        A Python file of plain assignments (names starting with ``_`` and
        imported modules are ignored). A bare name like ``smoke`` means
        ``training/config/smoke.py``.
    overrides : dict, optional
        ``{key: value}`` with Python values, applied after the file.
    argv_overrides : sequence of str
        ``"--key=value"`` strings, applied last.

    Raises
    ------
    ConfigError
        For an unknown key or a value of the wrong type.

    >>> load_recipe(overrides={"seed": 3})["seed"]
    3
    >>> load_recipe(argv_overrides=["--progress=false", "--pretrain_lr=2e-3"])["pretrain_lr"]
    0.002
    """
    config = dict(DEFAULTS)
    if config_file:
        path = Path(config_file)
        if not path.suffix and not path.exists():
            path = CONFIG_DIR / f"{config_file}.py"
        namespace: dict = {}
        exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 (trusted config files)
        for key, value in namespace.items():
            if key.startswith("_") or type(value).__name__ == "module":
                continue
            config[key] = _coerce(key, value, str(path))
    for key, value in (overrides or {}).items():
        config[key] = _coerce(key, value, "overrides")
    for arg in argv_overrides:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(f"command line: {arg!r} is not --key=value")
        key, text = arg[2:].split("=", 1)
        config[key] = parse_value(key, text)
    return config


def git_sha() -> str | None:
    """``git rev-parse HEAD`` of the repository, with ``-dirty`` if the tree has changes (untracked files
    included: new training code is untracked until committed); None without git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def _summary(metrics: dict) -> dict:
    keep = ("n", "nll", "accuracy", "macro_f1", "ece", "sn_vs_rest_ap", "flare_vs_rest_ap")
    return {k: metrics[k] for k in keep if k in metrics}


def _initial_weights(path: str, model_config) -> torch.nn.Module:
    """The model of checkpoint `path`, which must have this run's architecture."""
    from models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path)
    if model.config != model_config:
        raise ConfigError(f"init_from: {path} holds a model of config {model.config}, this run asks for {model_config}")
    model.train()
    return model


def run(config: dict) -> dict:
    """Run the recipe with a resolved ``config`` (`load_recipe`); returns ``{"checkpoint", "metrics", "data"}``."""
    from models.checkpoint import save_checkpoint
    from models.model import AlertTransformer, ModelConfig
    from training.datasets import LabeledSet, simulated, ztf_bts, ztf_packet_set
    from training.finetune import EvalSet, calibrate, finetune, metrics_at_detections
    from models.device import device_of
    from training.pretrain import pretrain

    start_s = time.perf_counter()
    c = config
    if c["num_threads"] > 0:
        torch.set_num_threads(c["num_threads"])
    torch.manual_seed(c["seed"])
    device = device_of(c["device"])
    work_dir = Path(c["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "config.json").write_text(json.dumps(c, indent=2) + "\n")
    log.info("train config %s", json.dumps(c, sort_keys=True))
    log.info("device=%s torch_threads=%d", device, torch.get_num_threads())

    # --- data ----------------------------------------------------------------------
    t0 = time.perf_counter()
    seed, mix = c["seed"], c["sim_mix"]
    sims = {(split, survey): simulated(split, n, seed, survey, mix)
            for split, n in (("train", c["n_sim_train"]), ("val", c["n_sim_val"])) for survey in ("lsst", "ztf")}
    sim_train = LabeledSet.concatenate([sims["train", "lsst"], sims["train", "ztf"]])
    sim_val = LabeledSet.concatenate([sims["val", "lsst"], sims["val", "ztf"]])
    bts = {}
    if c["use_bts"]:
        bts = {split: ztf_bts(split, seed, c["data_dir"] or None) for split in ("train", "val")}
        if c["bts_both_forms"]:
            bts.update({f"{split}_published": ztf_bts(split, seed, c["data_dir"] or None, service_form=False)
                        for split in ("train", "val")})
    packets = {}
    if c["use_bts"] and c["use_real_packets"]:  # stage 3 trains on both
        packets = {split: ztf_packet_set(split, c["data_dir"] or None) for split in ("train", "val")}
    data = {
        "sim": {f"{split}_{survey}": {"source": s.source, "n": len(s), "class_counts": s.class_counts()}
                for (split, survey), s in sims.items()},
        "bts": {split: {"source": s.source, "n": len(s), "class_counts": s.class_counts()} for split, s in bts.items()},
        "packets": {split: {"source": s.source, "n": len(s), "class_counts": s.class_counts()}
                    for split, s in packets.items()},
        "seed": seed, "sim_mix": mix, "test_splits_used": False,
    }
    log.info("data ready in %.1f s: sim train %d, sim val %d, bts %s", time.perf_counter() - t0, len(sim_train),
             len(sim_val), {k: len(v) for k, v in bts.items()})

    model_config = ModelConfig(d_model=c["d_model"], n_heads=c["n_heads"], n_layers=c["n_layers"],
                               dropout=c["dropout"], max_visits=c["max_visits"], n_time_freqs=c["n_time_freqs"])
    model = AlertTransformer(model_config)
    if c["init_from"]:
        model = _initial_weights(c["init_from"], model_config)
    model = model.to(device)
    log.info("model params=%d", model.get_num_params())
    aug = {"scheme": c["prefix_scheme"], "drop_nondetections_prob": c["drop_nondetections_prob"],
           "scale_jitter_dex": c["scale_jitter_dex"]}
    shared = {"device": device, "weight_decay": c["weight_decay"], "grad_clip": c["grad_clip"],
              "log_interval": c["log_interval"], "progress": c["progress"], "n_chunks": c["n_chunks"], **aug}
    metrics: dict = {}
    eval_sim = EvalSet.from_labeled("sim_val", sim_val, seed + 101, c["max_visits"], scheme=c["prefix_scheme"])

    # --- 1. pretraining --------------------------------------------------------------
    if c["pretrain_iters"] > 0:
        result = pretrain(model, sim_train.curves, sim_val.curves, iters=c["pretrain_iters"],
                          batch_size=c["pretrain_batch_size"], learning_rate=c["pretrain_lr"],
                          min_lr=c["pretrain_min_lr"], warmup_iters=c["pretrain_warmup_iters"],
                          mask_fraction=c["mask_fraction"], eval_interval=c["pretrain_eval_interval"],
                          eval_curves=c["pretrain_eval_curves"], seed=seed + 1,
                          ckpt_path=work_dir / "pretrain.pt", ckpt_meta={"train_config": c}, **shared)
        metrics["pretrain"] = {"val_loss": result["best_val_loss"], "iters": result["iters"],
                               "wall_s": result["wall_s"], "history": result["history"]}

    # --- 2. fine-tuning on simulations, then calibration ------------------------------------
    if c["finetune_iters"] > 0:
        result = finetune(model, sim_train, [eval_sim], iters=c["finetune_iters"],
                          batch_size=c["finetune_batch_size"], learning_rate=c["finetune_lr"],
                          min_lr=c["finetune_min_lr"], warmup_iters=c["finetune_warmup_iters"],
                          eval_interval=c["finetune_eval_interval"], seed=seed + 2,
                          class_weight_max_ratio=c["class_weight_max_ratio"], drop_context_prob=c["drop_context_prob"],
                          stage="finetune-sim", **shared)
        metrics["finetune_sim"] = {"best_iter": result["best_iter"], "iters": result["iters_run"],
                                   "wall_s": result["wall_s"], "best_val": _summary(result["best_metrics"]["sim_val"]),
                                   "history": [{"iter": h["iter"], "train_loss": h["train_loss"],
                                                "sim_val": _summary(h["metrics"]["sim_val"])}
                                               for h in result["history"]]}
        if c["calibrate"]:
            cal = calibrate(model, [eval_sim], device)
            metrics["calibration_sim"] = {"temperature": cal["temperature"],
                                          "ece_before": cal["before"]["sim_val"]["ece"],
                                          "ece_after": cal["after"]["sim_val"]["ece"]}
        save_checkpoint(work_dir / "finetune_sim.pt", model, metrics={"sim_val": _summary(eval_sim.metrics(
            model, device, float(model.temperature)))}, train_config=c, data=data)

    # --- 3. fine-tuning on ZTF BTS with simulated replay, then calibration -----------------------
    eval_sets = [eval_sim]
    if bts:
        eval_bts = EvalSet.from_labeled("bts_val", bts["val"], seed + 102, c["max_visits"],
                                        draws=c["bts_val_draws"], scheme=c["prefix_scheme"])
        eval_sets = [eval_bts, eval_sim]
        real_train = bts["train"]
        if packets:
            eval_packets = EvalSet.from_labeled("packets_val", packets["val"], seed + 104, c["max_visits"],
                                                draws=c["bts_val_draws"], scheme=c["prefix_scheme"])
            eval_sets = [eval_bts, eval_packets, eval_sim]
            real_train = LabeledSet.concatenate([bts["train"], packets["train"]])
        if "train_published" in bts:
            real_train = LabeledSet.concatenate([real_train, bts["train_published"]])
            eval_bts_published = EvalSet.from_labeled("bts_val_published", bts["val_published"], seed + 105,
                                                      c["max_visits"], draws=c["bts_val_draws"],
                                                      scheme=c["prefix_scheme"])
            eval_sets.insert(1, eval_bts_published)
        if c["bts_iters"] > 0:
            result = finetune(model, real_train, eval_sets, iters=c["bts_iters"], batch_size=c["bts_batch_size"],
                              learning_rate=c["bts_lr"], min_lr=c["bts_min_lr"], warmup_iters=c["bts_warmup_iters"],
                              eval_interval=c["bts_eval_interval"], seed=seed + 3, replay=sim_train,
                              replay_fraction=c["bts_replay_fraction"], patience=c["bts_patience"],
                              class_weight_max_ratio=c["class_weight_max_ratio"],
                              drop_context_prob=c["drop_context_prob"], stage="finetune-bts", **shared)
            metrics["finetune_bts"] = {
                "best_iter": result["best_iter"], "iters": result["iters_run"], "wall_s": result["wall_s"],
                "class_weights": result["class_weights"],
                "best_val": {k: _summary(v) for k, v in result["best_metrics"].items()},
                "history": [{"iter": h["iter"], "train_loss": h["train_loss"], "selection_loss": h["selection_loss"],
                             **{k: _summary(v) for k, v in h["metrics"].items()}} for h in result["history"]]}
        if c["calibrate"]:
            cal = calibrate(model, eval_sets, device)
            metrics["calibration_final"] = {"temperature": cal["temperature"],
                                            "ece_before": {k: v["ece"] for k, v in cal["before"].items()},
                                            "ece_after": {k: v["ece"] for k, v in cal["after"].items()}}

    # --- 4. val metrics at the final temperature, and the checkpoint ------------------------------
    temperature = float(model.temperature)
    val = {}
    for survey in ("lsst", "ztf"):
        es = EvalSet.from_labeled(f"sim_{survey}_val", sims["val", survey], seed + 103, c["max_visits"],
                                  scheme=c["prefix_scheme"])
        val[f"sim_{survey}_val"] = {"random_prefixes": _summary(es.metrics(model, device, temperature)),
                                    **{k: _summary(v) for k, v in metrics_at_detections(
                                        model, sims["val", survey], device, (1, 2, 3, 5, 10)).items()}}
    if bts:
        val["bts_val"] = {"random_prefixes": _summary(eval_bts.metrics(model, device, temperature)),
                          **{k: _summary(v) for k, v in metrics_at_detections(
                              model, bts["val"], device, (1, 2, 3, 5, 10)).items()}}
    if "val_published" in bts:
        val["bts_val_published"] = {
            "random_prefixes": _summary(eval_bts_published.metrics(model, device, temperature)),
            **{k: _summary(v) for k, v in metrics_at_detections(model, bts["val_published"], device,
                                                                (1, 2, 3, 5, 10)).items()}}
    if packets:
        val["packets_val"] = {"random_prefixes": _summary(eval_packets.metrics(model, device, temperature))}
    metrics["val"] = val
    metrics["temperature"] = temperature
    metrics["wall_time_s"] = time.perf_counter() - start_s
    metrics["device"] = str(device)
    metrics["torch_threads"] = torch.get_num_threads()
    out_path = Path(c["out_path"])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_path, model, metrics=metrics, train_config=c, data=data, code_version=git_sha())
    (work_dir / "metrics.json").write_text(json.dumps({"metrics": metrics, "data": data}, indent=2) + "\n")
    log.info("saved %s (%.1f kB) in %.1f s; val %s", out_path, out_path.stat().st_size / 1024,
             metrics["wall_time_s"], json.dumps({k: v["random_prefixes"].get("macro_f1") for k, v in val.items()}))
    return {"checkpoint": out_path, "metrics": metrics, "data": data}


# --- command line ----------------------------------------------------------------------


def cmd_train(args) -> int:
    """Resolve the config from parsed ``args`` and run the recipe; 0 on success, 2 on a config error."""
    overrides = [f"--{k[len('override_'):]}={v}" for k, v in vars(args).items() if k.startswith("override_")]
    try:
        config = load_recipe(args.config, argv_overrides=overrides)
    except (ConfigError, OSError) as err:
        print(f"alertformer train: {err}", file=sys.stderr)
        return 2
    result = run(config)
    print(json.dumps({"checkpoint": str(result["checkpoint"]),
                      "wall_time_s": round(result["metrics"]["wall_time_s"], 1),
                      "val_macro_f1": {k: v["random_prefixes"].get("macro_f1")
                                       for k, v in result["metrics"]["val"].items()}}))
    return 0

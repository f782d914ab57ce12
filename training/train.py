"""Running the training recipe (`training.recipe.TrainConfig`), stage by stage.

Run it as ``alertformer train [--config FILE] [--key=value ...]``
(`training.recipe.load_recipe` resolves the config). The resolved config is
logged, written to ``<work_dir>/config.json`` and saved in the checkpoint's
``train_config``. `run` calls the stages in order:

1. `load_data`: simulated train and val curves per survey (the simulated LSST
   curves with the Rubin context fields of ``rubin_context_fields``), the ZTF BTS
   train and val splits and the real packets' train and val parts (never a test split).
2. `build_model`: a fresh `AlertTransformer`, or the weights of ``init_from``; its
   ``ModelConfig.context_fields_by_survey`` is the recipe's, so the checkpoint says
   what the model was shown. `load_teacher`: with ``teacher``, the model stages 4
   and 5 distill.
3. `pretrain_stage`: `training.pretrain.pretrain`, masked flux reconstruction on
   the simulated train curves (LSST and ZTF, labels unused), random prefixes.
4. `sim_stage`: `training.finetune.finetune` on the same simulated curves with
   labels, class-balanced, a fresh optimizer; then `calibrate` on simulated val.
5. `real_stage`: `finetune` on the real ZTF BTS train split (and the real
   packets), replaying simulated curves in every batch (the BTS lacks flares,
   variables, kilonovae), early-stopped on BTS val + simulated val; then
   `calibrate` on every val set.
6. `val_metrics` on the val splits at the final temperature, and
   `save_checkpoint` with the config, data sizes, seeds, metrics, wall time and
   git sha.
"""
import json
import logging
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from models.checkpoint import CheckpointMismatch, load_checkpoint, save_checkpoint
from models.device import device_of
from models.errors import ConfigError
from models.model import AlertTransformer, ModelConfig
from training.datasets import LabeledSet, simulated, ztf_bts, ztf_packet_set
from training.finetune import EvalSet, FinetuneSettings, calibrate, finetune, metrics_at_detections
from training.pretrain import pretrain
from training.recipe import TrainConfig, load_recipe

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]
VAL_DETECTIONS = (1, 2, 3, 5, 10)  # the val metrics' N_det cuts (`metrics_at_detections`)


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


def _initial_weights(path: str, model_config: ModelConfig) -> AlertTransformer:
    """The model of checkpoint `path`, which must have this run's architecture; it takes this run's context table
    (what this run's training shows it)."""
    model, _ = load_checkpoint(path)
    if replace(model.config, context_fields_by_survey=model_config.context_fields_by_survey) != model_config:
        raise ConfigError(f"init_from: {path} holds a model of config {model.config}, this run asks for {model_config}")
    model.config = model_config
    model.train()
    return model


@dataclass
class TrainData:
    """`load_data`'s sets: simulated per (split, survey), pooled, and the real ones per split."""

    sims: dict[tuple[str, str], LabeledSet]  # ("train" | "val", "lsst" | "ztf") -> set
    sim_train: LabeledSet
    sim_val: LabeledSet
    bts: dict[str, LabeledSet]  # "train", "val" (and "train_published", "val_published" with bts_both_forms)
    packets: dict[str, LabeledSet]  # "train", "val" (with use_bts and use_real_packets)

    def description(self, c: TrainConfig) -> dict:
        """The checkpoint's ``data``: source, size and class counts of every set, the seed and the mix."""
        def entry(s: LabeledSet) -> dict:
            return {"source": s.source, "n": len(s), "class_counts": s.class_counts()}

        return {"sim": {f"{split}_{survey}": entry(s) for (split, survey), s in self.sims.items()},
                "bts": {split: entry(s) for split, s in self.bts.items()},
                "packets": {split: entry(s) for split, s in self.packets.items()},
                "seed": c.seed, "sim_mix": c.sim_mix, "test_splits_used": False}


@dataclass
class RealValSets:
    """The validation sets of stage 3: BTS val, the real packets' val, the published BTS form; and all of them
    with simulated val, in the order stage 3 selects and calibrates on."""

    bts: EvalSet
    packets: EvalSet | None
    bts_published: EvalSet | None
    all: list[EvalSet]


@dataclass
class TrainResult:
    """What `run` made: the checkpoint's path, its metrics and the data description."""

    checkpoint: Path
    metrics: dict
    data: dict


def load_data(c: TrainConfig) -> TrainData:
    """The simulated and real sets of the run (train and val splits only)."""
    t0 = time.perf_counter()
    data_dir = c.data_dir or None
    sims = {(split, survey): simulated(split, n, c.seed, survey, c.sim_mix, c.context_fields_by_survey())
            for split, n in (("train", c.n_sim_train), ("val", c.n_sim_val)) for survey in ("lsst", "ztf")}
    bts = {}
    if c.use_bts:
        bts = {split: ztf_bts(split, c.seed, data_dir) for split in ("train", "val")}
        if c.bts_both_forms:
            bts.update({f"{split}_published": ztf_bts(split, c.seed, data_dir, service_form=False)
                        for split in ("train", "val")})
    packets = {}
    if c.use_bts and c.use_real_packets:  # stage 3 trains on both
        packets = {split: ztf_packet_set(split, data_dir) for split in ("train", "val")}
    data = TrainData(sims, LabeledSet.concatenate([sims["train", "lsst"], sims["train", "ztf"]]),
                     LabeledSet.concatenate([sims["val", "lsst"], sims["val", "ztf"]]), bts, packets)
    log.info("data ready in %.1f s: sim train %d, sim val %d, bts %s", time.perf_counter() - t0,
             len(data.sim_train), len(data.sim_val), {k: len(v) for k, v in bts.items()})
    return data


def build_model(c: TrainConfig, device: torch.device) -> AlertTransformer:
    """The model of the config's architecture on `device`: fresh (torch's seeded initialisation) or ``init_from``."""
    model_config = ModelConfig(d_model=c.d_model, n_heads=c.n_heads, n_layers=c.n_layers, dropout=c.dropout,
                               max_visits=c.max_visits, n_time_freqs=c.n_time_freqs,
                               context_fields_by_survey=c.context_fields_by_survey())
    model = AlertTransformer(model_config)
    if c.init_from:
        model = _initial_weights(c.init_from, model_config)
    model = model.to(device)
    log.info("model params=%d", model.get_num_params())
    return model


def _finetune_settings(c: TrainConfig, **stage) -> FinetuneSettings:
    """`FinetuneSettings` of one stage: the recipe's shared optimizer and augmentation settings, and `stage`'s."""
    return FinetuneSettings(weight_decay=c.weight_decay, grad_clip=c.grad_clip, log_interval=c.log_interval,
                            progress=c.progress, n_chunks=c.n_chunks, scheme=c.prefix_scheme,
                            drop_nondetections_prob=c.drop_nondetections_prob, scale_jitter_dex=c.scale_jitter_dex,
                            class_weight_max_ratio=c.class_weight_max_ratio, drop_context_prob=c.drop_context_prob,
                            distill_weight=c.distill_weight, distill_temperature=c.distill_temperature, **stage)


def load_teacher(c: TrainConfig, device: torch.device) -> AlertTransformer | None:
    """The ``teacher`` checkpoint's model on `device`, in eval mode, or None without one."""
    if not c.teacher:
        return None
    try:
        teacher, _ = load_checkpoint(c.teacher)
    except CheckpointMismatch as err:
        raise ConfigError(f"teacher: {err}") from None
    log.info("teacher %s params=%d, distill_weight=%g at T=%g", c.teacher, teacher.get_num_params(),
             c.distill_weight, c.distill_temperature)
    return teacher.to(device).eval()


def pretrain_stage(model: AlertTransformer, data: TrainData, c: TrainConfig, device: torch.device,
                   work_dir: Path) -> dict:
    """Stage 1: masked reconstruction; its ``metrics["pretrain"]``."""
    result = pretrain(model, data.sim_train.curves, data.sim_val.curves, iters=c.pretrain_iters,
                      batch_size=c.pretrain_batch_size, learning_rate=c.pretrain_lr, min_lr=c.pretrain_min_lr,
                      warmup_iters=c.pretrain_warmup_iters, mask_fraction=c.mask_fraction,
                      eval_interval=c.pretrain_eval_interval, eval_curves=c.pretrain_eval_curves, seed=c.seed + 1,
                      ckpt_path=work_dir / "pretrain.pt", ckpt_meta={"train_config": asdict(c)}, device=device,
                      weight_decay=c.weight_decay, grad_clip=c.grad_clip, log_interval=c.log_interval,
                      progress=c.progress, n_chunks=c.n_chunks, scheme=c.prefix_scheme,
                      drop_nondetections_prob=c.drop_nondetections_prob, scale_jitter_dex=c.scale_jitter_dex)
    return {"val_loss": result["best_val_loss"], "iters": result["iters"], "wall_s": result["wall_s"],
            "history": result["history"]}


def sim_stage(model: AlertTransformer, data: TrainData, eval_sim: EvalSet, c: TrainConfig,
              device: torch.device, work_dir: Path, teacher: AlertTransformer | None = None) -> dict:
    """Stage 2: fine-tuning on simulations, then calibration; saves ``finetune_sim.pt``. Returns its metrics
    (``finetune_sim`` and, with ``calibrate``, ``calibration_sim``)."""
    result = finetune(model, data.sim_train, [eval_sim], _finetune_settings(
        c, iters=c.finetune_iters, batch_size=c.finetune_batch_size, learning_rate=c.finetune_lr,
        min_lr=c.finetune_min_lr, warmup_iters=c.finetune_warmup_iters, eval_interval=c.finetune_eval_interval,
        seed=c.seed + 2, stage="finetune-sim"), device=device, teacher=teacher)
    metrics = {"finetune_sim": {
        "best_iter": result.best_iter, "iters": result.iters_run, "wall_s": result.wall_s,
        "best_val": _summary(result.best_metrics["sim_val"]),
        "history": [{"iter": h["iter"], "train_loss": h["train_loss"], "sim_val": _summary(h["metrics"]["sim_val"])}
                    for h in result.history]}}
    if c.calibrate:
        cal = calibrate(model, [eval_sim], device)
        metrics["calibration_sim"] = {"temperature": cal["temperature"], "ece_before": cal["before"]["sim_val"]["ece"],
                                      "ece_after": cal["after"]["sim_val"]["ece"]}
    save_checkpoint(work_dir / "finetune_sim.pt", model, metrics={"sim_val": _summary(eval_sim.metrics(
        model, device, float(model.temperature)))}, train_config=asdict(c), data=data.description(c))
    return metrics


def real_val_sets(data: TrainData, eval_sim: EvalSet, c: TrainConfig) -> RealValSets:
    """Stage 3's validation sets (fixed prefixes, seeded apart from stage 2's)."""
    seed, draws = c.seed, c.bts_val_draws
    bts = EvalSet.from_labeled("bts_val", data.bts["val"], seed + 102, c.max_visits, draws=draws,
                               scheme=c.prefix_scheme)
    sets = [bts, eval_sim]
    packets = published = None
    if data.packets:
        packets = EvalSet.from_labeled("packets_val", data.packets["val"], seed + 104, c.max_visits, draws=draws,
                                       scheme=c.prefix_scheme)
        sets = [bts, packets, eval_sim]
    if "train_published" in data.bts:
        published = EvalSet.from_labeled("bts_val_published", data.bts["val_published"], seed + 105, c.max_visits,
                                         draws=draws, scheme=c.prefix_scheme)
        sets.insert(1, published)
    return RealValSets(bts, packets, published, sets)


def real_stage(model: AlertTransformer, data: TrainData, val: RealValSets, c: TrainConfig,
               device: torch.device, teacher: AlertTransformer | None = None) -> dict:
    """Stage 3: fine-tuning on the real sets with simulated replay, then calibration on every val set. Returns
    its metrics (``finetune_bts`` with ``bts_iters`` > 0, ``calibration_final`` with ``calibrate``)."""
    real_train = data.bts["train"]
    if data.packets:
        real_train = LabeledSet.concatenate([data.bts["train"], data.packets["train"]])
    if "train_published" in data.bts:
        real_train = LabeledSet.concatenate([real_train, data.bts["train_published"]])
    metrics = {}
    if c.bts_iters > 0:
        result = finetune(model, real_train, val.all, _finetune_settings(
            c, iters=c.bts_iters, batch_size=c.bts_batch_size, learning_rate=c.bts_lr, min_lr=c.bts_min_lr,
            warmup_iters=c.bts_warmup_iters, eval_interval=c.bts_eval_interval, seed=c.seed + 3,
            replay_fraction=c.bts_replay_fraction, patience=c.bts_patience, stage="finetune-bts"),
            device=device, replay=data.sim_train, teacher=teacher)
        metrics["finetune_bts"] = {
            "best_iter": result.best_iter, "iters": result.iters_run, "wall_s": result.wall_s,
            "class_weights": result.class_weights,
            "best_val": {k: _summary(v) for k, v in result.best_metrics.items()},
            "history": [{"iter": h["iter"], "train_loss": h["train_loss"], "selection_loss": h["selection_loss"],
                         **{k: _summary(v) for k, v in h["metrics"].items()}} for h in result.history]}
    if c.calibrate:
        cal = calibrate(model, val.all, device)
        metrics["calibration_final"] = {"temperature": cal["temperature"],
                                        "ece_before": {k: v["ece"] for k, v in cal["before"].items()},
                                        "ece_after": {k: v["ece"] for k, v in cal["after"].items()}}
    return metrics


def val_metrics(model: AlertTransformer, data: TrainData, val: RealValSets | None, c: TrainConfig,
                device: torch.device) -> dict:
    """Metrics on the val splits at the model's final temperature: random prefixes and `VAL_DETECTIONS` cuts."""
    temperature = float(model.temperature)

    def at_detections(lset: LabeledSet) -> dict:
        return {k: _summary(v) for k, v in metrics_at_detections(model, lset, device, VAL_DETECTIONS).items()}

    out = {}
    for survey in ("lsst", "ztf"):
        es = EvalSet.from_labeled(f"sim_{survey}_val", data.sims["val", survey], c.seed + 103, c.max_visits,
                                  scheme=c.prefix_scheme)
        out[f"sim_{survey}_val"] = {"random_prefixes": _summary(es.metrics(model, device, temperature)),
                                    **at_detections(data.sims["val", survey])}
    if val is not None:
        out["bts_val"] = {"random_prefixes": _summary(val.bts.metrics(model, device, temperature)),
                          **at_detections(data.bts["val"])}
    if val is not None and val.bts_published is not None:
        out["bts_val_published"] = {"random_prefixes": _summary(val.bts_published.metrics(model, device,
                                                                                           temperature)),
                                    **at_detections(data.bts["val_published"])}
    if val is not None and val.packets is not None:
        out["packets_val"] = {"random_prefixes": _summary(val.packets.metrics(model, device, temperature))}
    return out


def run(config: dict | TrainConfig) -> TrainResult:
    """Run the recipe with a resolved ``config`` (`training.recipe.load_recipe`), stage by stage (module docstring)."""
    start_s = time.perf_counter()
    c = config if isinstance(config, TrainConfig) else TrainConfig(**config)
    resolved = asdict(c)
    if c.num_threads > 0:
        torch.set_num_threads(c.num_threads)
    torch.manual_seed(c.seed)
    device = device_of(c.device)
    work_dir = Path(c.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "config.json").write_text(json.dumps(resolved, indent=2) + "\n")
    log.info("train config %s", json.dumps(resolved, sort_keys=True))
    log.info("device=%s torch_threads=%d", device, torch.get_num_threads())

    teacher = load_teacher(c, device)
    data = load_data(c)
    model = build_model(c, device)
    metrics: dict = {}
    eval_sim = EvalSet.from_labeled("sim_val", data.sim_val, c.seed + 101, c.max_visits, scheme=c.prefix_scheme)
    if c.pretrain_iters > 0:
        metrics["pretrain"] = pretrain_stage(model, data, c, device, work_dir)
    if c.finetune_iters > 0:
        metrics |= sim_stage(model, data, eval_sim, c, device, work_dir, teacher)
    val = None
    if data.bts:
        val = real_val_sets(data, eval_sim, c)
        metrics |= real_stage(model, data, val, c, device, teacher)

    metrics["val"] = val_metrics(model, data, val, c, device)
    metrics["temperature"] = float(model.temperature)
    metrics["wall_time_s"] = time.perf_counter() - start_s
    metrics["device"] = str(device)
    metrics["torch_threads"] = torch.get_num_threads()
    description = data.description(c)
    out_path = Path(c.out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_path, model, metrics=metrics, train_config=resolved, data=description,
                    code_version=git_sha())
    (work_dir / "metrics.json").write_text(json.dumps({"metrics": metrics, "data": description}, indent=2) + "\n")
    log.info("saved %s (%.1f kB) in %.1f s; val %s", out_path, out_path.stat().st_size / 1024,
             metrics["wall_time_s"], json.dumps({k: v["random_prefixes"].get("macro_f1")
                                                 for k, v in metrics["val"].items()}))
    return TrainResult(out_path, metrics, description)


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
    print(json.dumps({"checkpoint": str(result.checkpoint),
                      "wall_time_s": round(result.metrics["wall_time_s"], 1),
                      "val_macro_f1": {k: v["random_prefixes"].get("macro_f1")
                                       for k, v in result.metrics["val"].items()}}))
    return 0

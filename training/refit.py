"""One re-fine-tuning round: challenger from the champion, judged on a fixed holdout.

`refit` fine-tunes a copy of the champion on the new labels plus a replay sample of
earlier (simulated) training data, fully or through LoRA adapters, calibrates it, and
evaluates champion and challenger on the same fixed holdout. `decide` promotes only a
challenger that beats the champion by more than the margin; a tie keeps the champion.
"""
import copy
import logging
import time
from dataclasses import dataclass

import torch

from models.lora import add_lora, merge_lora
from models.model import AlertTransformer
from stream.config import TrainerSettings
from training.datasets import LabeledSet
from training.finetune import EvalSet, calibrate, finetune

log = logging.getLogger(__name__)
LOWER_IS_BETTER = {"balanced_nll"}
WARMUP_FRACTION = 0.1  # of the refit's iterations


@dataclass(frozen=True)
class Decision:
    promote: bool
    metric: str
    champion: dict  # holdout metrics of the champion
    challenger: dict  # holdout metrics of the challenger
    margin: float

    @property
    def gain(self) -> float:
        """Challenger minus champion on the metric, signed so that positive is better."""
        delta = self.challenger[self.metric] - self.champion[self.metric]
        return -delta if self.metric in LOWER_IS_BETTER else delta


def decide(champion: dict, challenger: dict, metric: str, margin: float) -> Decision:
    """Promote when the challenger's `metric` beats the champion's by more than `margin`.

    >>> decide({"macro_f1": 0.50}, {"macro_f1": 0.52}, "macro_f1", 0.01).promote
    True
    >>> decide({"macro_f1": 0.50}, {"macro_f1": 0.505}, "macro_f1", 0.01).promote
    False
    >>> decide({"balanced_nll": 1.0}, {"balanced_nll": 0.9}, "balanced_nll", 0.01).promote
    True
    """
    pending = Decision(False, metric, champion, challenger, margin)
    return Decision(pending.gain > margin, metric, champion, challenger, margin)


def _metrics(model: AlertTransformer, holdout: EvalSet, device: torch.device) -> dict:
    return holdout.metrics(model, device, float(model.temperature))


def refit(champion: AlertTransformer, labels: LabeledSet, replay: LabeledSet | None, val: EvalSet, holdout: EvalSet,
          settings: TrainerSettings, device: torch.device, seed: int = 0) -> tuple[AlertTransformer, Decision, dict]:
    """Train a challenger and judge it; returns (challenger, decision, training report)."""
    start_s = time.perf_counter()
    challenger = copy.deepcopy(champion).to(device)
    if settings.mode == "lora":
        add_lora(challenger, rank=settings.lora_rank)
    trainable = sum(p.numel() for p in challenger.parameters() if p.requires_grad)
    report = finetune(
        challenger, labels, [val], device=device, iters=settings.iters, batch_size=settings.batch_size,
        learning_rate=settings.learning_rate, min_lr=settings.learning_rate / 10,
        warmup_iters=max(1, int(WARMUP_FRACTION * settings.iters)), weight_decay=0.1, grad_clip=1.0,
        eval_interval=max(1, settings.iters // 4), scheme="log", drop_nondetections_prob=0.3, scale_jitter_dex=0.4, n_chunks=4, seed=seed,
        replay=replay, replay_fraction=settings.replay_fraction if replay is not None else 0.0,
        stage=f"refit-{settings.mode}", progress=False)
    if settings.mode == "lora":
        merge_lora(challenger)
    calibration = calibrate(challenger, [val], device)
    decision = decide(_metrics(champion.to(device), holdout, device), _metrics(challenger, holdout, device),
                      settings.metric, settings.margin)
    summary = {"mode": settings.mode, "trainable_params": trainable, "labels": len(labels),
               "replay": len(replay) if replay is not None else 0, "iters_run": report["iters_run"], "best_iter": report["best_iter"],
               "temperature": calibration["temperature"], "wall_s": round(time.perf_counter() - start_s, 1)}
    log.info("refit mode=%s labels=%d %s champion=%.4f challenger=%.4f promote=%s wall_s=%.1f", settings.mode,
             len(labels), settings.metric, decision.champion[settings.metric], decision.challenger[settings.metric],
             decision.promote, summary["wall_s"])
    return challenger, decision, summary

"""One re-fine-tuning round: challenger from the champion, judged on a fixed holdout.

`refit` fine-tunes a copy of the champion on the new labels plus a replay sample of
earlier (simulated) training data, fully or through LoRA adapters, calibrates it, and
evaluates champion and challenger on the same fixed holdout: a simulated part and, when
given, a real part (held-out real ZTF packets, windowed the way the service windows them).
`decide` promotes only a challenger that beats the champion by more than the margin on
the simulated part and does not lose on the real part; a tie keeps the champion. A
challenger that gains on simulations but loses on real alerts is not promoted.
"""
import copy
import logging
import math
import time
from dataclasses import dataclass

import torch

from models.lora import add_lora, merge_lora
from models.model import AlertTransformer
from stream.config import TrainerSettings
from training.datasets import LabeledSet
from training.finetune import EvalSet, FinetuneSettings, calibrate, finetune

log = logging.getLogger(__name__)
LOWER_IS_BETTER = {"balanced_nll"}
WARMUP_FRACTION = 0.1  # of the refit's iterations


@dataclass(frozen=True)
class Decision:
    promote: bool
    metric: str
    champion: dict  # simulated holdout metrics of the champion
    challenger: dict  # simulated holdout metrics of the challenger
    margin: float
    real_champion: dict | None = None  # real holdout metrics of the champion (None: no real part)
    real_challenger: dict | None = None
    real_tolerance: float = 0.0

    @property
    def gain(self) -> float:
        """Challenger minus champion on the metric (simulated part), signed so that positive is better."""
        return _signed_gain(self.metric, self.champion, self.challenger)

    @property
    def real_gain(self) -> float | None:
        """The same on the real part; None without a real part or where the metric is undefined there."""
        if self.real_champion is None or self.real_challenger is None:
            return None
        gain = _signed_gain(self.metric, self.real_champion, self.real_challenger)
        return None if math.isnan(gain) else gain

    @property
    def reason(self) -> str:
        """One line: why the challenger was or was not promoted."""
        sim = f"{self.metric} {self.gain:+.4f} on the simulated holdout (margin {self.margin})"
        real = ("no real holdout" if self.real_gain is None
                else f"{self.real_gain:+.4f} on the real holdout (tolerance {self.real_tolerance})")
        return f"{'promoted' if self.promote else 'kept the champion'}: {sim}, {real}"


def _signed_gain(metric: str, champion: dict, challenger: dict) -> float:
    delta = challenger[metric] - champion[metric]
    return -delta if metric in LOWER_IS_BETTER else delta


def decide(champion: dict, challenger: dict, metric: str, margin: float, real_champion: dict | None = None,
           real_challenger: dict | None = None, real_tolerance: float = 0.0) -> Decision:
    """Promote when the challenger's `metric` beats the champion's by more than `margin` on the simulated
    holdout and, where a real holdout is given, is not worse there by more than `real_tolerance`.

    >>> decide({"macro_f1": 0.50}, {"macro_f1": 0.52}, "macro_f1", 0.01).promote
    True
    >>> decide({"macro_f1": 0.50}, {"macro_f1": 0.505}, "macro_f1", 0.01).promote
    False
    >>> decide({"balanced_nll": 1.0}, {"balanced_nll": 0.9}, "balanced_nll", 0.01).promote
    True
    >>> decide({"macro_f1": 0.50}, {"macro_f1": 0.60}, "macro_f1", 0.01, {"macro_f1": 0.70}, {"macro_f1": 0.65}).promote
    False
    """
    pending = Decision(False, metric, champion, challenger, margin, real_champion, real_challenger, real_tolerance)
    real_ok = pending.real_gain is None or pending.real_gain >= -real_tolerance
    return Decision(pending.gain > margin and real_ok, metric, champion, challenger, margin, real_champion,
                    real_challenger, real_tolerance)


def _metrics(model: AlertTransformer, holdout: EvalSet, device: torch.device) -> dict:
    return holdout.metrics(model, device, float(model.temperature))


def refit(champion: AlertTransformer, labels: LabeledSet, replay: LabeledSet | None, val: EvalSet, holdout: EvalSet,
          settings: TrainerSettings, device: torch.device, seed: int = 0,
          real_holdout: EvalSet | None = None) -> tuple[AlertTransformer, Decision, dict]:
    """Train a challenger and judge it on `holdout` (simulated) and `real_holdout`; returns
    (challenger, decision, training report)."""
    start_s = time.perf_counter()
    challenger = copy.deepcopy(champion).to(device)
    if settings.mode == "lora":
        add_lora(challenger, rank=settings.lora_rank)
    trainable = sum(p.numel() for p in challenger.parameters() if p.requires_grad)
    report = finetune(challenger, labels, [val], FinetuneSettings(
        iters=settings.iters, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
        min_lr=settings.learning_rate / 10, warmup_iters=max(1, int(WARMUP_FRACTION * settings.iters)),
        weight_decay=0.1, grad_clip=1.0, eval_interval=max(1, settings.iters // 4), scheme="log",
        drop_nondetections_prob=0.3, scale_jitter_dex=0.4, drop_context_prob=0.3, n_chunks=4, seed=seed,
        replay_fraction=settings.replay_fraction if replay is not None else 0.0, stage=f"refit-{settings.mode}",
        progress=False), device=device, replay=replay)
    if settings.mode == "lora":
        merge_lora(challenger)
    calibration = calibrate(challenger, [val], device)
    champion = champion.to(device)
    real = ((_metrics(champion, real_holdout, device), _metrics(challenger, real_holdout, device))
            if real_holdout is not None else (None, None))
    decision = decide(_metrics(champion, holdout, device), _metrics(challenger, holdout, device),
                      settings.metric, settings.margin, *real, real_tolerance=settings.real_tolerance)
    summary = {"mode": settings.mode, "trainable_params": trainable, "labels": len(labels),
               "replay": len(replay) if replay is not None else 0, "iters_run": report.iters_run, "best_iter": report.best_iter,
               "temperature": calibration["temperature"], "wall_s": round(time.perf_counter() - start_s, 1)}
    log.info("refit mode=%s labels=%d wall_s=%.1f %s", settings.mode, len(labels), summary["wall_s"], decision.reason)
    return challenger, decision, summary

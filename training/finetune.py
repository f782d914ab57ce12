"""Supervised fine-tuning on labeled light curves, and temperature calibration.

`finetune` trains the classifier head and the transformer on random prefixes
of labeled curves (so the scores mean something at 1, 2, 3 detections) with a
class-balanced cross-entropy, evaluates on fixed validation prefixes
(`EvalSet`), keeps the best weights by validation loss, and optionally stops
early. A ``replay`` set can be mixed into every batch: the recipe fine-tunes on
the real ZTF BTS objects (5 supernova-like classes) while replaying simulated
curves of all 11 classes, so flares, variables and kilonovae are not forgotten.

With a ``teacher`` (a trained model of the same encoding), the loss adds knowledge
distillation: the KL divergence from the teacher's class distribution to the
student's, both softened by ``distill_temperature`` (Hinton et al. 2015), so a
smaller student learns the teacher's scores on every prefix, not only its labels.

`calibrate` then fits the temperature on validation logits
(`models.calibration.fit_temperature`) and stores it in the model.

Metrics here (`macro_f1`, `average_precision`, `classification_metrics`) are
the ones training tracks on val splits; the full evaluation lives elsewhere
(training/evaluation/).
"""
import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.calibration import fit_temperature
from models.encode import Batch, encode
from models.model import AlertTransformer
from models.taxonomy import FLARE_INDEX, N_CLASSES, SN_LIKE_INDICES
from training.datasets import LabeledSet, class_balance_weights
from training.metrics import average_precision, expected_calibration_error, macro_f1
from training.prefixes import first_n_detections, fixed_prefix_batches, prefix_batches
from training.pretrain import configure_optimizer, get_lr, optimizer_step

log = logging.getLogger(__name__)


# --- metrics -------------------------------------------------------------------------
def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> dict:
    """Metrics of (N, C) logits against (N,) class indices at a temperature.

    Returns
    -------
    dict
        ``n``; ``nll`` (mean cross-entropy, nats); ``balanced_nll`` (the same
        with inverse-frequency class weights: the mean per-class NLL);
        ``accuracy``; ``macro_f1`` (over the classes present); ``ece``
        (15 bins); ``sn_vs_rest_ap`` and ``flare_vs_rest_ap`` (average precision
        of `sn_likelihood` / `flare_likelihood`, NaN without positives).
    """
    logits = logits.float() / temperature  # (N, C)
    probs = logits.softmax(dim=-1)  # (N, C)
    y = targets.long()
    counts = torch.bincount(y, minlength=N_CLASSES).float()  # (C,)
    weights = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))  # (C,)
    predicted = probs.argmax(dim=-1)
    sn = torch.isin(y, torch.tensor(SN_LIKE_INDICES))
    return {
        "n": len(y),
        "nll": float(F.cross_entropy(logits, y)),
        "balanced_nll": float(F.cross_entropy(logits, y, weight=weights)),
        "accuracy": float((predicted == y).float().mean()),
        "macro_f1": macro_f1(y.numpy(), predicted.numpy()),
        "ece": expected_calibration_error(probs.numpy(), y.numpy()),
        "sn_vs_rest_ap": average_precision(sn.numpy(), probs[:, list(SN_LIKE_INDICES)].sum(-1).numpy()),
        "flare_vs_rest_ap": average_precision((y == FLARE_INDEX).numpy(), probs[:, FLARE_INDEX].numpy()),
    }


@torch.no_grad()
def predict_logits(model: AlertTransformer, batches: Sequence[Batch], device: torch.device) -> torch.Tensor:
    """(N, C) float32 CPU logits of ``batches`` (concatenated), in eval mode, temperature not applied."""
    was_training = model.training
    model.eval()
    out = [model(batch.to(device))[0].float().cpu() for batch in batches]  # each (B, C)
    model.train(was_training)
    return torch.cat(out)


# --- evaluation sets -----------------------------------------------------------------
@dataclass
class EvalSet:
    """Fixed validation prefixes of a `LabeledSet`, encoded once.

    Attributes
    ----------
    name : str
    batches : list of Batch
    targets : (M,) int64 tensor
        Class index of each row (M = draws x objects).
    """

    name: str
    batches: list
    targets: torch.Tensor

    @classmethod
    def from_labeled(cls, name: str, lset: LabeledSet, seed: int, max_visits: int, *, draws: int = 1,
                     scheme: str = "uniform") -> "EvalSet":
        batches, index = fixed_prefix_batches(lset.curves, seed, max_visits, draws=draws, scheme=scheme,
                                              contexts=lset.contexts)
        return cls(name, batches, torch.from_numpy(lset.targets[index]))

    def metrics(self, model: AlertTransformer, device: torch.device, temperature: float = 1.0) -> dict:
        return classification_metrics(predict_logits(model, self.batches, device), self.targets, temperature)


def selection_loss(model: AlertTransformer, eval_sets: Sequence[EvalSet], device: torch.device) -> tuple[float, dict]:
    """Mean over ``eval_sets`` of their class-balanced NLL (the early-stopping criterion), and every set's metrics."""
    metrics = {s.name: s.metrics(model, device) for s in eval_sets}
    return float(np.mean([m["balanced_nll"] for m in metrics.values()])), metrics


# --- training ------------------------------------------------------------------------
def source_class_weights(train: LabeledSet, replay: LabeledSet | None, max_ratio: float | None) -> np.ndarray:
    """(S, C) loss weights per source (row 0 ``train``, row 1 ``replay`` if given): each source class-balanced alone.

    Balancing each source on its own, not the pooled batch, matters when the
    sources disagree on the prior: pooled weights from a real set that is 75 % SN Ia
    would also down-weight the simulated SNe Ia in the replay, and a model then
    learns to call every simulated SN Ia-like curve an Ib/c. Each row's weights average
    to 1 over its source's curves, so sources count by their share of the batch.
    """
    return np.stack([class_balance_weights(lset.class_ids, max_ratio)
                     for lset in (train, replay) if lset is not None])


def weighted_cross_entropy(logits: torch.Tensor, targets: np.ndarray, sample_weights: np.ndarray | None,
                           device: torch.device) -> torch.Tensor:
    """``sum_i w_i NLL_i / sum_i w_i`` (`F.cross_entropy` with ``weight=`` when w depends on the class only)."""
    y = torch.from_numpy(targets).to(device)
    if sample_weights is None:
        return F.cross_entropy(logits, y)
    w = torch.from_numpy(sample_weights.astype(np.float32)).to(device)  # (B,)
    return (w * F.cross_entropy(logits, y, reduction="none")).sum() / w.sum()


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                      sample_weights: np.ndarray | None, device: torch.device) -> torch.Tensor:
    """``T^2 sum_i w_i KL(p_teacher,i || p_student,i) / sum_i w_i`` at softmax temperature T.

    The T^2 keeps its gradients on the scale of the cross-entropy's whatever T is (Hinton et al. 2015).

    >>> z = torch.tensor([[2.0, 0.0, -1.0]])
    >>> float(distillation_loss(z, z, 2.0, None, torch.device("cpu")))
    0.0
    """
    student = F.log_softmax(logits / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    per_curve = F.kl_div(student, teacher, reduction="none", log_target=True).sum(dim=-1) * temperature ** 2  # (B,)
    if sample_weights is None:
        return per_curve.mean()
    w = torch.from_numpy(sample_weights.astype(np.float32)).to(device)
    return (w * per_curve).sum() / w.sum()


@dataclass(frozen=True)
class FinetuneSettings:
    """How `finetune` trains: steps, optimizer schedule, augmentation, class weighting, early stopping.

    Attributes
    ----------
    iters, batch_size, learning_rate, min_lr, warmup_iters, weight_decay, grad_clip
        Steps, curves per step, and the `get_lr` schedule over ``iters``.
    eval_interval : int
        Steps between evaluations of the validation sets (and one at the end).
    scheme, drop_nondetections_prob, scale_jitter_dex, drop_context_prob
        Prefix augmentation (`training.prefixes.prefix_batches`).
    seed : int
    class_weighting : {"balanced", "none"}
        Inverse-frequency class weights, each source (train, replay) on its own
        (`source_class_weights`), or none.
    class_weight_max_ratio : float, optional
        Clip the largest weight to this multiple of the smallest.
    replay_fraction : float
        With a replay set: ``round(replay_fraction * batch_size)`` of each batch's curves come from it.
    patience : int
        Stop after this many evaluations without improvement; 0 never stops early.
    n_chunks : int
        Forward each step's curves in this many groups of similar length
        (`training.prefixes.prefix_batches`, less padding); the logits are
        concatenated and the loss is the same class-weighted cross-entropy
        ``model.forward`` computes, taken once over the whole batch.
    distill_weight : float
        With a teacher: the loss is ``(1 - distill_weight) * cross-entropy + distill_weight *``
        `distillation_loss`.
    distill_temperature : float
        The softmax temperature of `distillation_loss`.
    log_interval : int
        Steps between training-loss readings (each a device sync).
    stage : str
        Name in logs and the progress bar.
    progress : bool
    """

    iters: int
    batch_size: int
    learning_rate: float
    min_lr: float
    warmup_iters: int
    weight_decay: float
    grad_clip: float
    eval_interval: int
    scheme: str
    drop_nondetections_prob: float
    seed: int
    scale_jitter_dex: float = 0.0
    drop_context_prob: float = 0.0
    class_weighting: str = "balanced"
    class_weight_max_ratio: float | None = None
    replay_fraction: float = 0.0
    patience: int = 0
    n_chunks: int = 1
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    log_interval: int = 50
    stage: str = "finetune"
    progress: bool = True

    def __post_init__(self):
        if self.class_weighting not in ("balanced", "none"):
            raise ValueError(f"class_weighting={self.class_weighting!r}: expected 'balanced' or 'none'")
        if not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0:
            raise ValueError(f"distill_weight={self.distill_weight} must be in [0, 1] and "
                             f"distill_temperature={self.distill_temperature} > 0")


@dataclass
class FinetuneResult:
    """What `finetune` did.

    Attributes
    ----------
    history : list of dict
        Per evaluation: ``iter``, ``lr``, ``train_loss``, ``selection_loss`` and each set's ``metrics``.
    best_iter : int
        The step whose weights were kept (0: no evaluation ran).
    best_selection_loss : float
    best_metrics : dict or None
        Each validation set's metrics at ``best_iter``.
    iters_run : int
        Steps run (fewer than asked after an early stop).
    class_weights : dict or None
        ``{"train": (C,) list, "replay": (C,) list}`` loss weights per source; None without class weighting.
    wall_s : float
    """

    history: list[dict]
    best_iter: int
    best_selection_loss: float
    best_metrics: dict | None
    iters_run: int
    class_weights: dict | None
    wall_s: float


def finetune(model: AlertTransformer, train: LabeledSet, eval_sets: Sequence[EvalSet], settings: FinetuneSettings,
             *, device: torch.device, replay: LabeledSet | None = None,
             teacher: AlertTransformer | None = None) -> FinetuneResult:
    """Train ``model`` in place on labeled random prefixes of ``train`` (and ``replay``) with ``settings``;
    keep the weights of the best evaluation.

    Parameters
    ----------
    model : AlertTransformer
        On ``device``; a fresh AdamW is built here (never reuse a previous stage's).
    train : LabeledSet
    eval_sets : sequence of EvalSet
        Evaluated every ``settings.eval_interval`` steps and at the end; the weights
        with the lowest `selection_loss` are restored before returning.
    settings : FinetuneSettings
    device : torch.device
    replay : LabeledSet, optional
        Mixed into every batch: ``round(settings.replay_fraction * batch_size)`` of its curves.
    teacher : AlertTransformer, optional
        On ``device``, same encoding as ``model``: its logits on the same inputs are distilled
        (``settings.distill_weight``); it is put in eval mode and never trained.
    """
    s = settings
    start_s = time.perf_counter()
    rng = np.random.default_rng(s.seed)
    max_visits = model.config.max_visits
    n_replay = int(round(s.replay_fraction * s.batch_size)) if replay is not None else 0
    weights_np = (source_class_weights(train, replay if n_replay else None, s.class_weight_max_ratio)
                  if s.class_weighting == "balanced" else None)  # (S, C)
    train_targets, replay_targets = train.targets, (replay.targets if replay is not None else None)
    optimizer = configure_optimizer(model, s.learning_rate, s.weight_decay)
    history, best = [], {"loss": math.inf, "iter": 0, "state": None, "metrics": None}
    evals_since_best, running, it = 0, [], 0
    if teacher is not None:
        _check_teacher(model, teacher)
        teacher.eval()
    model.train()
    bar = tqdm(range(s.iters), desc=s.stage, disable=not s.progress, mininterval=2.0)
    for it in bar:
        lr = get_lr(it, learning_rate=s.learning_rate, min_lr=s.min_lr, warmup_iters=s.warmup_iters,
                    lr_decay_iters=s.iters)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = rng.integers(0, len(train), s.batch_size - n_replay)
        curves = [train.curves[i] for i in idx]
        contexts = train.contexts[idx]  # (B - n_replay, N_CONTEXT)
        targets = train_targets[idx]
        source = np.zeros(s.batch_size, dtype=np.int64)  # (B,) 0 = train, 1 = replay
        if n_replay:
            ridx = rng.integers(0, len(replay), n_replay)
            curves += [replay.curves[i] for i in ridx]
            contexts = np.concatenate([contexts, replay.contexts[ridx]])
            targets = np.concatenate([targets, replay_targets[ridx]])
            source[s.batch_size - n_replay:] = 1
        chunks, order = prefix_batches(curves, rng, max_visits, n_chunks=s.n_chunks, scheme=s.scheme,
                                       drop_nondetections_prob=s.drop_nondetections_prob,
                                       scale_jitter_dex=s.scale_jitter_dex, contexts=contexts,
                                       drop_context_prob=s.drop_context_prob)
        chunks = [b.to(device) for b in chunks]
        logits = torch.cat([model(b)[0] for b in chunks])  # (B, C), rows in `order`
        sample_weights = None if weights_np is None else weights_np[source[order], targets[order]]
        loss = weighted_cross_entropy(logits, targets[order], sample_weights, device)
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = torch.cat([teacher(b)[0] for b in chunks])
            loss = (1.0 - s.distill_weight) * loss + s.distill_weight * distillation_loss(
                logits, teacher_logits, s.distill_temperature, sample_weights, device)
        optimizer_step(model, optimizer, loss, s.grad_clip)
        if it % s.log_interval == 0:
            running.append(loss.item())  # .item(): a device sync, only every log_interval steps
            bar.set_postfix(loss=f"{running[-1]:.4f}", lr=f"{lr:.2e}")
        if (it + 1) % s.eval_interval == 0 or it == s.iters - 1:
            sel, metrics = selection_loss(model, eval_sets, device)
            history.append({"iter": it + 1, "lr": lr, "train_loss": float(np.mean(running)) if running else None,
                            "selection_loss": sel, "metrics": metrics})
            running = []
            log.info("%s iter=%d selection_loss=%.4f %s", s.stage, it + 1, sel, " ".join(
                f"{name}_macro_f1={m['macro_f1']:.3f} {name}_nll={m['nll']:.3f}" for name, m in metrics.items()))
            if sel < best["loss"]:
                best = {"loss": sel, "iter": it + 1, "metrics": metrics,
                        "state": copy.deepcopy(model.state_dict())}
                evals_since_best = 0
            else:
                evals_since_best += 1
                if s.patience and evals_since_best >= s.patience:
                    log.info("%s: early stop at iter=%d, best iter=%d", s.stage, it + 1, best["iter"])
                    break
    bar.close()
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    return FinetuneResult(
        history=history, best_iter=best["iter"], best_selection_loss=best["loss"], best_metrics=best["metrics"],
        iters_run=it + 1 if s.iters else 0,
        class_weights=None if weights_np is None else dict(zip(("train", "replay"), weights_np.tolist())),
        wall_s=time.perf_counter() - start_s)


def _check_teacher(model: AlertTransformer, teacher: AlertTransformer) -> None:
    """A teacher must read the same tokens and context and answer in the same classes."""
    same = ("n_features", "n_context", "n_classes", "max_visits", "context_fields_by_survey")
    differ = [f"{k}: student {getattr(model.config, k)}, teacher {getattr(teacher.config, k)}"
              for k in same if getattr(model.config, k) != getattr(teacher.config, k)]
    if differ:
        raise ValueError(f"the teacher does not fit the student: {'; '.join(differ)}")


# --- calibration ---------------------------------------------------------------------
def calibrate(model: AlertTransformer, eval_sets: Sequence[EvalSet], device: torch.device) -> dict:
    """Fit the temperature on the pooled logits of ``eval_sets`` and set it in ``model``.

    Returns
    -------
    dict
        ``temperature`` and, per set, metrics ``before`` (T = 1) and ``after``.
    """
    logits = {s.name: predict_logits(model, s.batches, device) for s in eval_sets}
    temperature = fit_temperature(torch.cat(list(logits.values())), torch.cat([s.targets for s in eval_sets]))
    model.set_temperature(temperature)
    out = {"temperature": temperature, "before": {}, "after": {}}
    for s in eval_sets:
        out["before"][s.name] = classification_metrics(logits[s.name], s.targets, 1.0)
        out["after"][s.name] = classification_metrics(logits[s.name], s.targets, temperature)
    log.info("calibrated temperature=%.3f %s", temperature, " ".join(
        f"{name}_ece={out['before'][name]['ece']:.3f}->{out['after'][name]['ece']:.3f}" for name in logits))
    return out


def metrics_at_detections(model: AlertTransformer, lset: LabeledSet, device: torch.device,
                          n_detections: Sequence[int] = (1, 2, 3, 5, 10), batch_size: int = 512) -> dict:
    """Calibrated metrics on ``first_n_detections(curve, n)`` for each n (objects with fewer detections skipped).

    Returns ``{f"ndet{n}": classification_metrics(...)}``, each at the model's temperature.
    """
    out = {}
    temperature = float(model.temperature)
    for n in n_detections:
        cut = [(first_n_detections(c, n), t, x) for c, t, x in zip(lset.curves, lset.targets, lset.contexts)]
        cut = [(c, t, x) for c, t, x in cut if c is not None]
        if not cut:
            continue
        curves, targets, contexts = zip(*cut)
        contexts = np.stack(contexts)
        batches = [encode(curves[s:s + batch_size], model.config.max_visits, contexts=contexts[s:s + batch_size])
                   for s in range(0, len(curves), batch_size)]
        out[f"ndet{n}"] = classification_metrics(predict_logits(model, batches, device),
                                                 torch.as_tensor(np.array(targets)), temperature)
    return out

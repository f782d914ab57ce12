"""Self-supervised pretraining: masked flux reconstruction on unlabeled light curves.

Each step draws a batch of curves, cuts them at random detections
(`training.prefixes.prefix_batch`), hides the flux of ~15 % of the tokens and
trains the transformer to predict it (`AlertTransformer.reconstruction_loss`).
No labels are used, so any photometry will do; the recipe (`training.train`)
feeds it simulated LSST and ZTF curves together.

Also home of what every training stage shares: the learning-rate schedule
`get_lr` and `configure_optimizer` (the device: `models.device.device_of`).
"""
import logging
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm import tqdm

from models.checkpoint import save_checkpoint
from models.encode import Batch
from models.lightcurve import LightCurve
from models.model import AlertTransformer
from training.prefixes import fixed_prefix_batches, prefix_batches

log = logging.getLogger(__name__)


def get_lr(it: int, *, learning_rate: float, min_lr: float, warmup_iters: int, lr_decay_iters: int) -> float:
    """Learning rate at iteration ``it``: linear warmup, then cosine decay to ``min_lr``.

    >>> [round(get_lr(i, learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=110), 3)
    ...  for i in (0, 9, 10, 60, 110, 500)]
    [0.091, 0.909, 1.0, 0.55, 0.1, 0.1]
    """
    # 1) linear warmup for warmup_iters steps
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    # 2) if it > lr_decay_iters, return min learning rate
    if it > lr_decay_iters:
        return min_lr
    # 3) in between, use cosine decay down to min learning rate
    decay_ratio = (it - warmup_iters) / max(lr_decay_iters - warmup_iters, 1)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # coeff ranges 0..1
    return min_lr + coeff * (learning_rate - min_lr)


def configure_optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float,
                        betas: tuple[float, float] = (0.9, 0.99)) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on biases, LayerNorm gains or the mask embedding).

    Every stage builds a fresh one: reusing the pretraining optimizer's
    moments for fine-tuning stalled training (the model author's finding).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                   grad_clip: float) -> None:
    """Backward pass, gradient-norm clipping (when ``grad_clip`` > 0) and one optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


@torch.no_grad()
def estimate_loss(model: AlertTransformer, batches: Sequence[Batch], device: torch.device,
                  mask_fraction: float, seed: int = 0) -> float:
    """Mean masked-flux reconstruction loss over fixed ``batches``, with fixed masks (``seed``)."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)  # CPU generator: same masks on any device
    total, weight = 0.0, 0
    for batch in batches:
        loss = model.reconstruction_loss(batch.to(device), mask_fraction, generator)
        total += loss.item() * len(batch)  # .item() syncs with the device, fine at eval time
        weight += len(batch)
    model.train(was_training)
    return total / max(weight, 1)


def pretrain(model: AlertTransformer, train_curves: Sequence[LightCurve], val_curves: Sequence[LightCurve], *,
             device: torch.device, iters: int, batch_size: int, learning_rate: float, min_lr: float,
             warmup_iters: int, weight_decay: float, grad_clip: float, mask_fraction: float,
             eval_interval: int, eval_curves: int, scheme: str, drop_nondetections_prob: float, seed: int,
             scale_jitter_dex: float = 0.0, n_chunks: int = 1, log_interval: int = 50, progress: bool = True,
             ckpt_path=None, ckpt_meta: dict | None = None) -> dict:
    """Train ``model`` in place on masked flux reconstruction.

    Parameters
    ----------
    model : AlertTransformer
        On ``device``.
    train_curves, val_curves : sequences of LightCurve
        Unlabeled photometry; val gives the periodic eval loss (at most
        ``eval_curves`` of each, prefixes and masks drawn once).
    iters, batch_size : int
        Optimizer steps and curves per step.
    learning_rate, min_lr, warmup_iters, weight_decay, grad_clip
        AdamW and the `get_lr` schedule (decaying over all ``iters``);
        ``grad_clip`` 0 disables clipping.
    mask_fraction : float
        Share of tokens whose flux is hidden.
    eval_interval : int
        Steps between evaluations (and the last step).
    scheme, drop_nondetections_prob, scale_jitter_dex
        Prefix augmentation, see `training.prefixes.prefix_batch`.
    seed : int
        Seeds batch sampling, prefixes and masks.
    n_chunks : int
        Each step's curves are forwarded in this many groups of similar length
        (`training.prefixes.prefix_batches`: less padding); the step's loss is
        the chunks' losses weighted by their real tokens, close to the mean
        over all hidden tokens.
    ckpt_path : path, optional
        Where to save the model (with ``ckpt_meta`` passed to `save_checkpoint`) when val loss improves.

    Returns
    -------
    dict
        ``history`` (list of {iter, train_loss, val_loss, lr}), ``best_val_loss``, ``iters``, ``wall_s``.
    """
    start_s = time.perf_counter()
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    max_visits = model.config.max_visits
    n_eval = min(eval_curves, len(val_curves), len(train_curves))
    eval_sets = {name: fixed_prefix_batches(list(curves[:n_eval]), seed + 1, max_visits, scheme=scheme)[0]
                 for name, curves in (("train", train_curves), ("val", val_curves))}
    optimizer = configure_optimizer(model, learning_rate, weight_decay)
    history, best_val_loss = [], math.inf
    model.train()
    bar = tqdm(range(iters), desc="pretrain", disable=not progress, mininterval=2.0)
    for it in bar:
        lr = get_lr(it, learning_rate=learning_rate, min_lr=min_lr, warmup_iters=warmup_iters, lr_decay_iters=iters)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = rng.integers(0, len(train_curves), batch_size)
        chunks, _ = prefix_batches([train_curves[i] for i in idx], rng, max_visits, n_chunks=n_chunks,
                                   scheme=scheme, drop_nondetections_prob=drop_nondetections_prob,
                                   scale_jitter_dex=scale_jitter_dex)
        n_real = torch.tensor([float(b.mask.sum()) for b in chunks])  # (n_chunks,) real tokens, on the host
        share = (n_real / n_real.sum()).tolist()
        loss = sum(w * model.reconstruction_loss(b.to(device), mask_fraction, generator)
                   for w, b in zip(share, chunks))
        optimizer_step(model, optimizer, loss, grad_clip)
        if it % log_interval == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")  # .item(): a device sync, only here
        if (it + 1) % eval_interval == 0 or it == iters - 1:
            losses = {name: estimate_loss(model, batches, device, mask_fraction, seed + 2)
                      for name, batches in eval_sets.items()}
            history.append({"iter": it + 1, "train_loss": losses["train"], "val_loss": losses["val"], "lr": lr})
            log.info("pretrain iter=%d train_loss=%.4f val_loss=%.4f lr=%.2e", it + 1, losses["train"],
                     losses["val"], lr)
            if losses["val"] < best_val_loss:
                best_val_loss = losses["val"]
                if ckpt_path is not None:
                    meta = dict(ckpt_meta or {})
                    meta["metrics"] = {**meta.get("metrics", {}), "pretrain_iter": it + 1,
                                       "pretrain_val_loss": best_val_loss}
                    save_checkpoint(ckpt_path, model, **meta)
    bar.close()
    return {"history": history, "best_val_loss": best_val_loss, "iters": iters,
            "wall_s": time.perf_counter() - start_s}

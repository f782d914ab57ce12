"""`AlertTransformer`: a small transformer encoder over a light curve's tokens.

Reads small to large: TimeEncoding -> SelfAttention -> MLP -> Block ->
ModelConfig -> AlertTransformer. Input is a `models.encode.Batch`; there is no
positional embedding, since the continuous time encoding of ``dt_days`` says
where each token sits, and attention is bidirectional over real tokens (the
serving input is always "everything so far"; training draws random prefixes so
early scores are meaningful). Padding is masked out of attention keys and of
the pooling, so it cannot change the logits.
"""
import contextlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.context import LEGACY_CONTEXT_FIELDS_BY_SURVEY, context_fields
from models.encode import FLUX_FEATURE, MAX_VISITS, N_CONTEXT_FEATURES, N_FEATURES, Batch
from models.taxonomy import N_CLASSES

# Periods of the time encoding: 10 minutes resolves the two visits of a night
# (a flare fades between them); 1000 days spans a survey season several times.
MIN_PERIOD_DAYS = 10.0 / 1440.0
MAX_PERIOD_DAYS = 1000.0


class TimeEncoding(nn.Module):
    """Sine and cosine of ``2 pi dt / P`` for ``n_freqs`` periods P log-spaced in
    [`MIN_PERIOD_DAYS`, `MAX_PERIOD_DAYS`].

    The angular frequencies are a persistent buffer, so a checkpoint carries the
    periods it was trained with. In float32 the 10-minute phase degrades past
    dt ~ 100 d (dt itself is resolved to ~5 s at 1000 d); the long periods carry
    the coarse time there.
    """

    def __init__(self, n_freqs: int):
        super().__init__()
        periods = torch.logspace(math.log10(MIN_PERIOD_DAYS), math.log10(MAX_PERIOD_DAYS), n_freqs,
                                 dtype=torch.float64)  # (n_freqs,) days
        self.register_buffer("angular_freq", (2 * math.pi / periods).float())  # (n_freqs,) rad/day

    def forward(self, dt_days: torch.Tensor) -> torch.Tensor:
        phase = dt_days.unsqueeze(-1) * self.angular_freq  # (B, L, n_freqs)
        return torch.cat([phase.sin(), phase.cos()], dim=-1)  # (B, L, 2 n_freqs)


class SelfAttention(nn.Module):
    """Multi-head self-attention whose keys are limited to real tokens."""

    def __init__(self, config: "ModelConfig"):
        super().__init__()
        if config.d_model % config.n_heads:
            raise ValueError(f"d_model={config.d_model} is not a multiple of n_heads={config.n_heads}")
        self.n_heads = config.n_heads
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=2)  # 3 x (B, L, D)
        q = q.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, nh, L, hs)
        k = k.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, nh, L, hs)
        v = v.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2)  # (B, nh, L, hs)
        # Boolean mask, True = may attend. Every curve has a real token, so no row is all False.
        key_mask = mask[:, None, None, :]  # (B, 1, 1, L)
        # CPU bf16: the fused attention kernel is slower in bf16 than in fp32 at these small
        # heads (16 wide, ~60 tokens), and fp32 scores stay closer to the fp32 model's.
        cpu_bf16 = x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        if cpu_bf16:
            q, k, v = q.float(), k.float(), v.float()
        with torch.autocast("cpu", enabled=False) if cpu_bf16 else contextlib.nullcontext():
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask,
                                               dropout_p=self.dropout if self.training else 0.0)  # (B, nh, L, hs)
        y = y.transpose(1, 2).contiguous().view(B, L, D)  # (B, L, D)
        return self.resid_dropout(self.proj(y))  # (B, L, D)


class MLP(nn.Module):
    def __init__(self, config: "ModelConfig"):
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model)
        self.proj = nn.Linear(4 * config.d_model, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # (B, L, D)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, config: "ModelConfig"):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)  # (B, L, D)
        return x + self.mlp(self.ln_2(x))  # (B, L, D)


@dataclass
class ModelConfig:
    """Architecture; a checkpoint stores ``asdict(config)`` and rebuilds from it.

    ``max_visits`` is not an architectural limit (there is no positional
    table); it is the window L serving passes to `encode`, recorded here so a
    checkpoint says how it was trained. Nor is ``context_fields_by_survey``: which
    alert-context fields the model is shown, per survey (`models.context.model_context`),
    those its training gave that survey's curves. A checkpoint written
    before it was recorded loads with `models.context.LEGACY_CONTEXT_FIELDS_BY_SURVEY`.
    """

    n_features: int = N_FEATURES
    n_context: int = N_CONTEXT_FEATURES
    n_classes: int = N_CLASSES
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 4
    dropout: float = 0.1
    max_visits: int = MAX_VISITS
    n_time_freqs: int = 16  # 2 x 16 time features per token
    context_fields_by_survey: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(LEGACY_CONTEXT_FIELDS_BY_SURVEY))

    def __post_init__(self):
        # a loaded checkpoint gives lists; ValueError for an unknown field name
        self.context_fields_by_survey = {str(survey): context_fields(fields, f"context_fields_by_survey[{survey!r}]")
                                         for survey, fields in self.context_fields_by_survey.items()}


class AlertTransformer(nn.Module):
    """Light-curve classifier: tokens -> transformer -> masked mean -> class logits.

    The alert context is one more token, first in the sequence: its known features and
    their mask (``[context * mask, mask]``) through a linear layer, plus a learned marker.
    With nothing known it is a constant token, the model's "no context" state.

    Also holds a masked-flux reconstruction head for self-supervised
    pretraining (`reconstruction_loss`) and a calibration temperature applied
    by `predict_proba` only.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.time_encoding = TimeEncoding(config.n_time_freqs)
        self.embed = nn.Linear(config.n_features + 2 * config.n_time_freqs, config.d_model)
        self.context_embed = nn.Linear(2 * config.n_context, config.d_model)
        self.context_marker = nn.Parameter(torch.zeros(config.d_model))  # tells the context token from the points
        self.flux_mask_embedding = nn.Parameter(torch.zeros(config.d_model))  # marks tokens whose flux is hidden
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layers)])
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.n_classes)
        self.flux_head = nn.Linear(config.d_model, 1)
        self.register_buffer("temperature", torch.ones(()))  # () calibration temperature, > 0
        self.apply(self._init_weights)
        nn.init.normal_(self.flux_mask_embedding, std=0.02)
        nn.init.normal_(self.context_marker, std=0.02)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            nn.init.zeros_(module.bias)

    def get_num_params(self) -> int:
        """Number of trainable and frozen parameters (buffers excluded)."""
        return sum(p.numel() for p in self.parameters())

    def _hidden(self, batch: Batch, flux_hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Final-layer states (B, 1 + L, D) of the context token and the points, and their mask (B, 1 + L).

        ``flux_hidden`` (B, L) bool marks masked-flux tokens.
        """
        x = torch.cat([batch.features, self.time_encoding(batch.dt_days)], dim=-1)  # (B, L, F + 2 nf)
        x = self.embed(x)  # (B, L, D)
        if flux_hidden is not None:
            x = x + flux_hidden.unsqueeze(-1).to(x.dtype) * self.flux_mask_embedding  # (B, L, D)
        known = batch.context_mask.to(x.dtype)  # (B, K)
        context = self.context_embed(torch.cat([batch.context * known, known], dim=-1)) + self.context_marker  # (B, D)
        x = self.drop(torch.cat([context.unsqueeze(1), x], dim=1))  # (B, 1 + L, D)
        mask = torch.cat([torch.ones_like(batch.mask[:, :1]), batch.mask], dim=1)  # (B, 1 + L)
        for block in self.blocks:
            x = block(x, mask)  # (B, 1 + L, D)
        return self.ln_f(x), mask

    def forward(self, batch: Batch, targets: torch.Tensor | None = None,
                class_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class logits, and the cross-entropy loss when ``targets`` are given.

        Parameters
        ----------
        batch : Batch
            ``features`` (B, L, F), ``dt_days`` (B, L), ``mask`` (B, L), True = real token.
        targets : (B,) int64 tensor, optional
            Class indices in `models.taxonomy.CLASS_IDS` order.
        class_weights : (C,) float tensor, optional
            Per-class loss weights (e.g. inverse class frequency) for a
            class-balanced loss; the loss is their weighted mean.

        Returns
        -------
        logits : (B, C) tensor
            Uncalibrated; `predict_proba` applies the temperature.
        loss : scalar tensor or None
        """
        h, mask = self._hidden(batch)  # (B, 1 + L, D), (B, 1 + L)
        real = mask.unsqueeze(-1)  # (B, 1 + L, 1)
        pooled = h.masked_fill(~real, 0.0).sum(dim=1) / real.sum(dim=1)  # (B, D) mean over the real tokens
        logits = self.head(pooled)  # (B, C)
        loss = None if targets is None else F.cross_entropy(logits, targets, weight=class_weights)
        return logits, loss

    def reconstruction_loss(self, batch: Batch, mask_fraction: float = 0.15,
                            generator: torch.Generator | None = None) -> torch.Tensor:
        """Self-supervised loss: hide the flux of random real tokens and predict it.

        Each real token is chosen with probability ``mask_fraction``, plus one
        random real token per curve so every curve contributes. Chosen tokens
        get flux feature 0 and a learned marker; the loss is the mean squared
        error of the predicted ``asinh(flux / scale)`` over chosen tokens.
        Error, detection flag, band and time stay visible.

        Parameters
        ----------
        batch : Batch
            As for `forward`; no labels needed.
        mask_fraction : float
            Probability of hiding each real token's flux, in [0, 1].
        generator : torch.Generator, optional
            Source of the random choice (on any device), for reproducibility.

        Returns
        -------
        scalar tensor
        """
        mask = batch.mask  # (B, L)
        rand_device = generator.device if generator is not None else mask.device
        u = torch.rand(mask.shape, generator=generator, device=rand_device).to(mask.device)  # (B, L)
        pick = torch.rand(mask.shape[0], generator=generator, device=rand_device).to(mask.device)  # (B,)
        chosen = (u < mask_fraction) & mask  # (B, L)
        n_visits = batch.n_visits  # (B,)
        one_per_curve = torch.minimum((pick * n_visits).long(), n_visits - 1)  # (B,) a real token (they come first)
        chosen[torch.arange(mask.shape[0], device=mask.device), one_per_curve] = True
        target = batch.features[..., FLUX_FEATURE]  # (B, L)
        features = batch.features.clone()  # (B, L, F)
        features[..., FLUX_FEATURE] = target.masked_fill(chosen, 0.0)
        h, _ = self._hidden(Batch(features, batch.dt_days, mask, batch.context, batch.context_mask),
                            flux_hidden=chosen)  # (B, 1 + L, D)
        pred = self.flux_head(h[:, 1:]).squeeze(-1)  # (B, L): the points, not the context token
        return F.mse_loss(pred[chosen], target[chosen])

    def set_temperature(self, temperature: float) -> None:
        """Set the calibration temperature (> 0) used by `predict_proba`."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature.fill_(temperature)

    def predict_proba(self, batch: Batch) -> torch.Tensor:
        """Calibrated class probabilities, ``softmax(logits / temperature)``.

        Runs in eval mode under `torch.inference_mode` (restoring the training
        flag afterwards) on the model's device.

        Parameters
        ----------
        batch : Batch
            As for `forward`, on any device.

        Returns
        -------
        (B, C) float32 tensor on the model's device; rows sum to 1.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                logits, _ = self(batch.to(self.temperature.device))  # (B, C)
                return F.softmax(logits.float() / self.temperature, dim=-1)  # (B, C) fp32 also under bf16 autocast
        finally:
            self.train(was_training)

"""LoRA adapters (Hu et al. 2021) on the attention projections, for parameter-efficient re-fine-tuning.

`add_lora` freezes the model and wraps each attention ``qkv`` and ``proj`` linear layer with a
trainable low-rank update ``W + (alpha / rank) B A`` (B starts at zero, so the wrapped model is
the original one); the classification head stays trainable. `merge_lora` folds the updates back
into plain `nn.Linear` layers, so a LoRA-tuned model is saved and served like any other.
"""
import torch
from torch import nn

from models.model import AlertTransformer, SelfAttention

LORA_TARGETS = ("qkv", "proj")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features) / base.in_features**0.5)  # (r, in)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))  # (out, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale  # (..., out)

    def merged(self) -> nn.Linear:
        layer = nn.Linear(self.base.in_features, self.base.out_features)
        with torch.no_grad():
            layer.weight.copy_(self.base.weight + self.scale * self.lora_b @ self.lora_a)
            layer.bias.copy_(self.base.bias)
        return layer


def add_lora(model: AlertTransformer, rank: int = 4, alpha: float = 8.0) -> list[nn.Parameter]:
    """Wrap the attention projections in place; return the parameters left trainable."""
    for p in model.parameters():
        p.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, SelfAttention):
            for name in LORA_TARGETS:
                setattr(module, name, LoRALinear(getattr(module, name), rank, alpha))
    for p in model.head.parameters():
        p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def merge_lora(model: AlertTransformer) -> AlertTransformer:
    """Replace every `LoRALinear` by its merged `nn.Linear` (in place) and unfreeze the model."""
    for module in model.modules():
        if isinstance(module, SelfAttention):
            for name in LORA_TARGETS:
                layer = getattr(module, name)
                if isinstance(layer, LoRALinear):
                    setattr(module, name, layer.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model

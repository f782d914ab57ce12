"""LoRA adapters: start as the identity, train few parameters, merge to the same function."""
import numpy as np
import torch

from models.encode import encode
from models.lightcurve import LightCurve
from models.lora import add_lora, merge_lora
from models.model import AlertTransformer, ModelConfig


def _batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    curves = [LightCurve.from_arrays(np.arange(10) + 100 * i, 60000 + np.sort(rng.uniform(0, 30, 10)),
                                     rng.integers(0, 6, 10), rng.normal(1000, 300, 10), np.full(10, 50.0),
                                     np.ones(10, bool)) for i in range(n)]
    return encode(curves)


def test_lora_starts_as_identity_trains_few_params_and_merges_exactly():
    torch.manual_seed(0)
    model = AlertTransformer(ModelConfig(d_model=32, n_heads=2, n_layers=2, dropout=0.0)).eval()
    batch = _batch()
    before, _ = model(batch)
    trainable = add_lora(model, rank=2)
    after_wrap, _ = model(batch)
    assert torch.allclose(before, after_wrap, atol=1e-6)
    n_trainable = sum(p.numel() for p in trainable)
    assert 0 < n_trainable < 0.2 * model.get_num_params()

    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    targets = torch.arange(len(batch)) % 2
    model.train()
    for _ in range(20):
        _, loss = model(batch, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    tuned, _ = model(batch)
    assert not torch.allclose(tuned, before, atol=1e-4)
    merge_lora(model)
    merged, _ = model(batch)
    assert torch.allclose(tuned, merged, atol=1e-5)
    assert set(model.state_dict()) == set(AlertTransformer(model.config).state_dict())

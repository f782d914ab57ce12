"""training.quantize: int8 replaces the linear layers, stays close to fp32, and runs on the CPU only.

int8 is a measurement tool (`alertformer evaluate --quantize int8`, the benches), not a serving
precision: see the README's Performance section.
"""
import numpy as np
import pytest
import torch

from models.encode import encode
from training.quantize import quantize_int8

def test_int8_replaces_linear_layers_and_stays_close_to_fp32(tiny_model, random_curves):
    batch = encode(random_curves, max_visits=tiny_model.config.max_visits)
    quantized = quantize_int8(tiny_model)
    assert not any(type(m) is torch.nn.Linear for m in quantized.modules())
    assert any(type(m) is torch.nn.Linear for m in tiny_model.modules())  # the original is left alone
    with torch.inference_mode():
        fp32 = tiny_model.predict_proba(batch).numpy()  # (B, C)
        int8 = quantized.predict_proba(batch).numpy()  # (B, C)
    assert fp32.max(axis=1).mean() > 0.3  # far from uniform (1/11): differences would show
    assert not np.array_equal(int8, fp32)  # it is another computation
    np.testing.assert_allclose(int8.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(int8 - fp32).max() < 0.05 and np.abs(int8 - fp32).mean() < 0.01
    assert (int8.argmax(axis=1) == fp32.argmax(axis=1)).mean() >= 0.9


def test_int8_refuses_a_model_off_the_cpu():
    with pytest.raises(ValueError, match="CPU"):
        quantize_int8(torch.nn.Linear(4, 2, device="meta"))

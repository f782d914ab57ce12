"""Unit-test fixtures shared by the scorer and quantisation tests: a small sharp model and random curves."""
import numpy as np
import pytest
import torch

from models.lightcurve import LightCurve
from models.model import AlertTransformer, ModelConfig

MJD0 = 60512.25
SMALL_WINDOW = 16  # max_visits of `tiny_model`; `random_curves` run up to 3x past it


@pytest.fixture(scope="module")
def tiny_model() -> AlertTransformer:
    """A small model whose probabilities are far from uniform (a sharpened head), so differences show."""
    torch.manual_seed(0)
    model = AlertTransformer(ModelConfig(d_model=32, n_heads=2, n_layers=2, max_visits=SMALL_WINDOW)).eval()
    with torch.no_grad():
        model.head.weight.mul_(40.0)
    return model


@pytest.fixture(scope="module")
def random_curves() -> list[LightCurve]:
    """50 curves of 1 to 47 points over 40 days, 60 % detections."""
    rng = np.random.default_rng(3)
    curves = []
    for n in rng.integers(1, 3 * SMALL_WINDOW, 50):
        t = MJD0 + np.sort(rng.uniform(0.0, 40.0, n))
        curves.append(LightCurve.from_arrays(np.arange(n), t, rng.integers(0, 9, n), rng.normal(0.0, 800.0, n),
                                             rng.uniform(50.0, 200.0, n), rng.random(n) < 0.6))
    return curves

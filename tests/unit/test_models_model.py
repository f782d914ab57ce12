"""models.model: shapes, padding invariance, losses, calibration, and that it can learn."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.context import context_vector
from models.encode import Batch, encode
from models.lightcurve import LightCurve
from models.model import AlertTransformer, ModelConfig
from models.taxonomy import N_CLASSES

MJD0 = 60512.25


def make_curve(n, rng):
    t = MJD0 + np.sort(rng.uniform(0.0, 40.0, n))
    return LightCurve.from_arrays(np.arange(n), t, rng.integers(0, 9, n), rng.normal(0.0, 800.0, n),
                                  rng.uniform(50.0, 200.0, n), rng.random(n) < 0.6)


def slope_curves(n_curves, rng):
    """Two classes told apart by the sign of the flux slope: 0 rises, 1 fades."""
    curves, labels = [], rng.integers(0, 2, n_curves)
    for label in labels:
        n = int(rng.integers(4, 16))
        t = np.sort(rng.uniform(0.0, 20.0, n))
        peak = rng.uniform(500.0, 5000.0)
        shape = 0.2 + 0.8 * (t / 20.0 if label == 0 else 1.0 - t / 20.0)
        err = np.full(n, 0.05 * peak)
        curves.append(LightCurve.from_arrays(np.arange(n), MJD0 + t, rng.integers(0, 9, n),
                                             peak * shape + rng.normal(0.0, err), err, np.ones(n, bool)))
    return curves, torch.from_numpy(labels)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AlertTransformer(ModelConfig()).eval()


def test_default_config_is_small(model):
    assert 100_000 <= model.get_num_params() <= 2_000_000


def test_forward_shapes_and_loss(model):
    rng = np.random.default_rng(0)
    batch = encode([make_curve(n, rng) for n in (1, 7, 90)], max_visits=64)
    logits, loss = model(batch)
    assert logits.shape == (3, N_CLASSES) and loss is None
    targets = torch.tensor([0, 4, 10])
    _, loss = model(batch, targets)
    assert loss.shape == () and torch.isfinite(loss)
    _, unit = model(batch, targets, class_weights=torch.ones(N_CLASSES))
    torch.testing.assert_close(unit, loss)
    weights = torch.ones(N_CLASSES)
    weights[4] = 10.0
    _, weighted = model(batch, targets, class_weights=weights)
    per_class = F.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(weighted, (per_class * weights[targets]).sum() / weights[targets].sum())


def test_padding_and_batch_mates_leave_logits_unchanged(model):
    rng = np.random.default_rng(1)
    curves = [make_curve(n, rng) for n in (1, 5, 20)]
    batch = encode(curves, max_visits=64)
    logits, _ = model(batch)
    extra = 37  # append padded tokens by hand
    padded = Batch(F.pad(batch.features, (0, 0, 0, extra)), F.pad(batch.dt_days, (0, extra)),
                   F.pad(batch.mask, (0, extra)), batch.context, batch.context_mask)
    torch.testing.assert_close(model(padded)[0], logits, atol=1e-5, rtol=0)
    for i, lc in enumerate(curves):  # alone, each curve has no padding at all
        alone, _ = model(encode([lc], max_visits=64))
        torch.testing.assert_close(alone[0], logits[i], atol=1e-5, rtol=0)


def test_predict_proba_applies_temperature_and_restores_mode():
    torch.manual_seed(1)
    m = AlertTransformer(ModelConfig(dropout=0.2))
    batch = encode([make_curve(n, np.random.default_rng(n)) for n in (3, 12)])
    m.eval()
    logits, _ = m(batch)
    m.train()
    m.set_temperature(2.0)
    probs = m.predict_proba(batch)
    assert m.training and not probs.requires_grad
    torch.testing.assert_close(probs, F.softmax(logits / 2.0, dim=-1))
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    with pytest.raises(ValueError, match="temperature"):
        m.set_temperature(0.0)


def test_reconstruction_loss_is_reproducible_and_trains_its_head(model):
    rng = np.random.default_rng(2)
    batch = encode([make_curve(n, rng) for n in (1, 2, 30)], max_visits=32)
    a = model.reconstruction_loss(batch, 0.3, torch.Generator().manual_seed(5))
    b = model.reconstruction_loss(batch, 0.3, torch.Generator().manual_seed(5))
    assert torch.isfinite(a) and torch.equal(a, b)
    m = AlertTransformer(ModelConfig())
    m.reconstruction_loss(batch, 0.3, torch.Generator().manual_seed(5)).backward()
    assert m.flux_head.weight.grad.abs().sum() > 0 and m.flux_mask_embedding.grad.abs().sum() > 0
    assert m.head.weight.grad is None


def test_learns_a_toy_task_and_pretraining_lowers_reconstruction_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    config = ModelConfig(n_classes=2, d_model=32, n_heads=4, n_layers=2, dropout=0.0, max_visits=16)
    m = AlertTransformer(config)
    train_curves, train_y = slope_curves(512, rng)
    test_curves, test_y = slope_curves(256, rng)
    test_batch = encode(test_curves, config.max_visits)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)

    def recon_eval():
        with torch.no_grad():
            return m.eval().reconstruction_loss(test_batch, 0.3, torch.Generator().manual_seed(0)).item()

    before = recon_eval()
    m.train()
    for _ in range(60):  # self-supervised pretraining
        idx = rng.integers(0, 512, 64)
        loss = m.reconstruction_loss(encode([train_curves[i] for i in idx], config.max_visits), 0.3)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    assert recon_eval() < 0.7 * before

    losses = []
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)  # a fresh optimizer: stale Adam moments slow fine-tuning
    m.train()
    for _ in range(250):  # supervised fine-tuning
        idx = rng.integers(0, 512, 64)
        _, loss = m(encode([train_curves[i] for i in idx], config.max_visits), train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    accuracy = (m.predict_proba(test_batch).argmax(-1) == test_y).float().mean().item()
    assert accuracy > 0.85


def test_context_counts_where_known_and_masked_values_are_ignored(model):
    rng = np.random.default_rng(2)
    curves = [make_curve(5, rng), make_curve(5, rng)]
    known = np.stack([context_vector(real_bogus=0.9, star_score=0.1, star_distance_arcsec=4.0,
                                     first_detection_mjd_tai=59000.0, ss_distance_arcsec=np.inf)] * 2)
    without, _ = model(encode(curves))
    with_context, _ = model(encode(curves, contexts=known))
    assert (with_context - without).abs().max() > 1e-4  # the context token reads the known fields
    batch = encode(curves, contexts=known)
    hidden = Batch(batch.features, batch.dt_days, batch.mask, torch.randn_like(batch.context) * 10,
                   torch.zeros_like(batch.context_mask))  # garbage values, all masked
    torch.testing.assert_close(model(hidden)[0], without, atol=1e-5, rtol=0)

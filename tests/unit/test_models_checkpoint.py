"""models.checkpoint: round trip, metadata, contract checks, atomic writes."""
import numpy as np
import pytest
import torch

import models.checkpoint as checkpoint
from models.checkpoint import CheckpointMismatch, load_checkpoint, save_checkpoint
from models.encode import ENCODING_VERSION, encode
from models.lightcurve import LightCurve
from models.model import AlertTransformer, ModelConfig
from models.taxonomy import CLASS_IDS


def make_batch():
    rng = np.random.default_rng(0)
    curves = []
    for n in (2, 9, 40):
        t = 60300.0 + np.sort(rng.uniform(0.0, 30.0, n))
        curves.append(LightCurve.from_arrays(np.arange(n), t, rng.integers(0, 9, n), rng.normal(0.0, 500.0, n),
                                             rng.uniform(50.0, 150.0, n), rng.random(n) < 0.5))
    return encode(curves, max_visits=32)


@pytest.fixture
def trained(tmp_path):
    torch.manual_seed(0)
    model = AlertTransformer(ModelConfig(d_model=32, n_layers=2, max_visits=32))
    model.set_temperature(1.7)
    path = save_checkpoint(tmp_path / "champion.pt", model, metrics={"macro_f1": np.float32(0.5), "step": 10},
                           train_config={"lr": 1e-3, "classes": (1, 2)}, data={"seed": 7, "set": "sim-v1"},
                           code_version="abc123")
    return model, path


def rewrite(path, **changes):
    ckpt = torch.load(path, weights_only=True)
    ckpt.update(changes)
    torch.save(ckpt, path)


def test_round_trip_gives_identical_outputs_and_metadata(trained):
    model, path = trained
    loaded, meta = load_checkpoint(path)
    batch = make_batch()
    assert not loaded.training and loaded.config == model.config
    assert torch.equal(loaded.predict_proba(batch), model.predict_proba(batch))
    assert meta["encoding_version"] == ENCODING_VERSION and meta["taxonomy"] == list(CLASS_IDS)
    assert meta["temperature"] == pytest.approx(1.7) and float(loaded.temperature) == pytest.approx(1.7)
    assert meta["metrics"] == {"macro_f1": 0.5, "step": 10}
    assert meta["train_config"] == {"lr": 1e-3, "classes": [1, 2]} and meta["data"]["seed"] == 7
    assert meta["code_version"] == "abc123" and meta["created_utc"].endswith("+00:00")
    assert "state_dict" not in meta


PREVIOUS_ENCODING = "tokens-asinh-mederr-wavelength-eventwindow-2"  # before the alert-context token


@pytest.mark.parametrize("key, value", [("encoding_version", "tokens-old-0"),
                                        ("encoding_version", PREVIOUS_ENCODING),
                                        ("taxonomy", list(CLASS_IDS[:-1])),
                                        ("band_names", ["g", "r"]),
                                        ("format", 0)])
def test_contract_mismatch_raises(trained, key, value):
    _, path = trained
    rewrite(path, **{key: value})
    with pytest.raises(CheckpointMismatch, match=key):
        load_checkpoint(path)
    assert issubclass(CheckpointMismatch, ValueError)


def test_foreign_config_or_missing_keys_raise(trained):
    _, path = trained
    ckpt = torch.load(path, weights_only=True)
    rewrite(path, model_config={**ckpt["model_config"], "n_experts": 4})
    with pytest.raises(CheckpointMismatch, match="model_config"):
        load_checkpoint(path)
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointMismatch, match="missing key"):
        load_checkpoint(path)


def test_save_is_atomic(trained, monkeypatch):
    model, path = trained
    before = path.read_bytes()
    with pytest.raises(TypeError, match="metrics.when"):
        save_checkpoint(path, model, metrics={"when": object()})

    def crash(obj, f):
        f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(checkpoint.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_a_checkpoint_of_the_previous_encoding_is_refused_with_a_clear_error(trained, tmp_path):
    from stream.config import ScoringSettings
    from stream.errors import ConfigError
    from stream.score import Scorer

    _, path = trained
    rewrite(path, encoding_version=PREVIOUS_ENCODING)
    with pytest.raises(ConfigError, match=f"encoding_version is '{PREVIOUS_ENCODING}', this code has '{ENCODING_VERSION}'"):
        Scorer.from_checkpoint(path, ScoringSettings(device="cpu"))

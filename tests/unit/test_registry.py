"""Model registry: versions, lineage, promotion stack, atomic writes."""
import json

import pytest
import torch

from models.checkpoint import save_checkpoint
from models.model import AlertTransformer, ModelConfig
from models.registry import ModelRegistry, RegistryError


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "m.pt", AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1)))


def test_register_promote_rollback(tmp_path, checkpoint):
    reg = ModelRegistry(tmp_path / "reg")
    assert reg.champion() is None and reg.versions() == []
    v1 = reg.register(checkpoint, note="shipped")
    v2 = reg.register(checkpoint, parent=v1.version, lineage={"labels": 12}, metrics={"macro_f1": 0.5})
    v3 = reg.register(checkpoint, parent=v2.version)
    assert [v.version for v in reg.versions()] == ["v0001", "v0002", "v0003"]
    assert reg.get("v0002").meta["parent"] == "v0001" and reg.get("v0002").meta["lineage"] == {"labels": 12}
    for v in (v1, v2, v3):
        reg.promote(v.version, "test")
    assert reg.champion() == "v0003"
    assert reg.rollback() == "v0002"
    assert reg.rollback() == "v0001"
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()
    assert reg.champion() == "v0001"
    assert [h["version"] for h in reg.history()] == ["v0001", "v0002", "v0003", "v0002", "v0001"]


def test_unknown_version_and_bad_checkpoint(tmp_path, checkpoint):
    reg = ModelRegistry(tmp_path / "reg")
    with pytest.raises(RegistryError, match="v0042"):
        reg.promote("v0042", "x")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):
        reg.register(bad)
    assert reg.versions() == []


def test_half_written_version_is_invisible_and_cleaned(tmp_path, checkpoint):
    reg = ModelRegistry(tmp_path / "reg")
    stale = reg.versions_dir / ".tmp-crashed"
    stale.mkdir()
    (stale / "model.pt").write_bytes(b"half")
    assert reg.versions() == []
    assert reg.register(checkpoint).version == "v0001"
    assert not stale.exists()
    assert json.loads((reg.get("v0001").path / "meta.json").read_text())["version"] == "v0001"

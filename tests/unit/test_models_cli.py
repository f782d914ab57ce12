"""``alertformer models``: the served model without a registry, and imports that keep the checkpoint's metrics."""
import pytest
import torch

from alertformer.cli import main
from models.checkpoint import save_checkpoint
from models.model import AlertTransformer, ModelConfig
from models.paths import SHIPPED_CHECKPOINT
from models.registry import ModelRegistry
from stream.score import checkpoint_version

METRICS = {"macro_f1": 0.5, "ece": 0.03}


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "m.pt", AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1)),
                           metrics=METRICS)


@pytest.fixture(autouse=True)
def no_settings(monkeypatch):
    for name in ("ALERTFORMER_CONFIG", "ALERTFORMER_REGISTRY__PATH", "ALERTFORMER_SCORING__CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)


def test_list_without_a_registry_shows_the_served_model(capsys):
    assert main(["models", "list"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    version = checkpoint_version(SHIPPED_CHECKPOINT, {})
    assert line.startswith(f"served: {version} (shipped model {SHIPPED_CHECKPOINT}; registry.path not set)")
    assert "finetune_bts" in line  # the names of its metrics


def test_list_names_an_explicit_checkpoint_over_the_registry(tmp_path, checkpoint, monkeypatch, capsys):
    monkeypatch.setenv("ALERTFORMER_REGISTRY__PATH", str(tmp_path / "registry"))
    ModelRegistry(tmp_path / "registry").register(checkpoint)
    monkeypatch.setenv("ALERTFORMER_SCORING__CHECKPOINT", str(checkpoint))
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("  v0001") and "served: sha-" in lines[1]
    assert "scoring.checkpoint is set: the registry's champion is not served" in lines[1]
    assert '"macro_f1": 0.5' in lines[1]


def test_import_keeps_the_checkpoints_metrics(tmp_path, checkpoint, monkeypatch, capsys):
    monkeypatch.setenv("ALERTFORMER_REGISTRY__PATH", str(tmp_path / "registry"))
    assert main(["models", "import", str(checkpoint)]) == 0
    assert ModelRegistry(tmp_path / "registry").get("v0001").meta["metrics"] == METRICS
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == next(line for line in lines if "v0001" in line and "parent" in line)
    assert 'metrics={"ece": 0.03, "macro_f1": 0.5}' in lines[-2]
    assert lines[-1].startswith("served: sha-") and "no registry champion" in lines[-1]


def test_missing_explicit_checkpoint_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALERTFORMER_SCORING__CHECKPOINT", str(tmp_path / "gone.pt"))
    assert main(["models", "list"]) == 2
    assert "gone.pt does not exist" in capsys.readouterr().err


def test_import_unless_champion_keeps_an_existing_champion(tmp_path, checkpoint, monkeypatch, capsys):
    """The start-up step of docker compose: the first start imports, later ones keep the champion."""
    monkeypatch.setenv("ALERTFORMER_REGISTRY__PATH", str(tmp_path / "registry"))
    registry = ModelRegistry(tmp_path / "registry")
    assert main(["models", "import", str(checkpoint), "--unless-champion"]) == 0  # no champion yet: imports
    registry.promote("v0001", "test")
    assert main(["models", "import", str(checkpoint), "--promote", "--unless-champion"]) == 0
    assert [v.version for v in registry.versions()] == ["v0001"] and registry.champion() == "v0001"
    assert capsys.readouterr().out.splitlines()[-1] == "champion: v0001 (kept; nothing imported)"

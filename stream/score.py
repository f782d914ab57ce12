"""The model in the stream: load a checkpoint, score a batch of windows in one forward pass."""
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import CheckpointMismatch, load_checkpoint
from models.encode import FEATURE_NAMES, encode
from models.lightcurve import LightCurve
from models.model import AlertTransformer
from models.taxonomy import flare_likelihood, sn_likelihood
from stream.errors import ConfigError

log = logging.getLogger(__name__)
DET_FEATURE = FEATURE_NAMES.index("det")
SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "models" / "shipped" / "alertformer.pt"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("scoring.device: cuda requested but no CUDA device is available")
    return torch.device(name)


def checkpoint_version(path: Path, meta: dict) -> str:
    """The registry version recorded in the checkpoint, else ``sha-`` + 12 hex of the file's SHA-256."""
    if meta.get("version"):
        return str(meta["version"])
    return "sha-" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@dataclass(frozen=True)
class Scores:
    probs: np.ndarray  # (B, C) float32, calibrated
    sn_likelihood: np.ndarray  # (B,) float32
    flare_likelihood: np.ndarray  # (B,) float32
    n_visits: np.ndarray  # (B,) int32, points the model saw
    n_detections: np.ndarray  # (B,) int32
    model_version: str
    scored_ms: int  # ms since the Unix epoch, UTC


class Scorer:
    """A loaded model and the device it runs on; `score` is one forward pass per batch."""

    def __init__(self, model: AlertTransformer, version: str, device: torch.device, max_visits: int):
        self.model = model.to(device).eval()
        self.version, self.device, self.max_visits = version, device, max_visits

    @classmethod
    def from_file(cls, path: Path, version: str | None, device: str = "auto", max_visits: int | None = None) -> "Scorer":
        """Load `path`; `version` names it (default: `checkpoint_version`). Raises CheckpointMismatch."""
        dev = pick_device(device)
        model, meta = load_checkpoint(path, map_location=dev)
        version = version or checkpoint_version(path, meta)
        log.info("model loaded version=%s device=%s params=%d", version, dev, model.get_num_params())
        return cls(model, version, dev, max_visits or model.config.max_visits)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None, device: str = "auto", max_visits: int | None = None) -> "Scorer":
        """The configured checkpoint (default: the shipped one), with configuration errors for bad files."""
        path = Path(path) if path else SHIPPED_CHECKPOINT
        if not path.is_file():
            raise ConfigError(f"scoring.checkpoint: {path} does not exist")
        try:
            return cls.from_file(path, None, device, max_visits)
        except CheckpointMismatch as err:
            raise ConfigError(f"scoring.checkpoint: {path}: {err}") from None

    def score(self, curves: list[LightCurve]) -> Scores:
        batch = encode(curves, max_visits=self.max_visits)
        probs = self.model.predict_proba(batch).float().cpu().numpy()  # (B, C); the one host sync per batch
        det = (batch.mask & (batch.features[..., DET_FEATURE] > 0.5)).sum(dim=1)
        return Scores(
            probs=probs,
            sn_likelihood=np.asarray(sn_likelihood(probs), dtype=np.float32),
            flare_likelihood=np.asarray(flare_likelihood(probs), dtype=np.float32),
            n_visits=batch.mask.sum(dim=1).numpy().astype(np.int32),
            n_detections=det.numpy().astype(np.int32),
            model_version=self.version,
            scored_ms=time.time_ns() // 1_000_000,
        )

"""Checkpoints: one dict per file, enough to rebuild and trust the model from the file alone.

Keys of the dict (`torch.save` format, loaded with ``weights_only=True``):

- ``format``: `CHECKPOINT_FORMAT`, the layout of this dict
- ``model_config``: ``asdict(ModelConfig)``, with the context fields the model is shown per
  survey (``context_fields_by_survey``; absent in older checkpoints: the legacy table,
  `models.context.LEGACY_CONTEXT_FIELDS_BY_SURVEY`); ``state_dict``: weights and buffers (CPU)
- ``encoding_version``, ``taxonomy`` (class ids in output order), ``band_names``:
  the input/output contract; a mismatch with the running code is `CheckpointMismatch`
- ``temperature``: the calibration temperature (also in the state dict, which wins)
- ``metrics``, ``train_config``, ``data`` (data set and seed description):
  plain dicts of str/int/float/bool/None/lists
- ``code_version`` (e.g. git sha, or None), ``created_utc`` (ISO 8601)
"""
import os
import pickle
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from models.bands import BAND_NAMES
from models.encode import ENCODING_VERSION
from models.errors import AlertformerError
from models.model import AlertTransformer, ModelConfig
from models.taxonomy import CLASS_IDS

CHECKPOINT_FORMAT = 1
_REQUIRED_KEYS = ("format", "model_config", "state_dict", "encoding_version", "taxonomy", "band_names")


class CheckpointMismatch(AlertformerError, ValueError):
    """The file is not a checkpoint this code can use: another format, encoding,
    taxonomy, band list or architecture. The message names the field."""


def _plain(value, where: str):
    """``value`` as plain Python (so ``weights_only`` loading works); TypeError naming ``where`` otherwise."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored in a checkpoint; "
                    "use str, int, float, bool, None, lists or dicts")


def save_checkpoint(path, model: AlertTransformer, *, metrics: dict | None = None,
                    train_config: dict | None = None, data: dict | None = None,
                    code_version: str | None = None) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically.

    The dict goes to a temporary file in the same directory, which is fsynced
    and then renamed over ``path``, so readers see the old file or the new one,
    never a partial one.

    Parameters
    ----------
    path : str or Path
        Destination file; its directory must exist.
    model : AlertTransformer
    metrics, train_config, data : dict, optional
        Evaluation metrics, the resolved training config, and a description of
        the data (data set names, sizes, random seed). Values must be plain
        (numpy scalars and arrays are converted).
    code_version : str, optional
        Version of the code that trained the model, e.g. the git sha.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model_config": asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "encoding_version": ENCODING_VERSION,
        "taxonomy": list(CLASS_IDS),
        "band_names": list(BAND_NAMES),
        "temperature": float(model.temperature),
        "metrics": _plain(metrics or {}, "metrics"),
        "train_config": _plain(train_config or {}, "train_config"),
        "data": _plain(data or {}, "data"),
        "code_version": code_version,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; other services read checkpoints
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def load_checkpoint(path, map_location: str | torch.device = "cpu") -> tuple[AlertTransformer, dict]:
    """Rebuild the model from a checkpoint file and check it fits this code.

    Parameters
    ----------
    path : str or Path
    map_location : str or torch.device
        Device for the model, e.g. ``"cpu"`` or ``"cuda:0"``.

    Returns
    -------
    model : AlertTransformer
        In eval mode, on ``map_location``.
    meta : dict
        Every key of the checkpoint except ``state_dict``.

    Raises
    ------
    CheckpointMismatch
        If the file is not a readable torch checkpoint, lacks a required key, or its format, encoding version,
        taxonomy, band names, config or weights do not match this code.
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # torch's text for this advises weights_only=False: not for a garbage file
        raise CheckpointMismatch(f"{path}: not a torch checkpoint file (unpickling failed)") from None
    except (EOFError, RuntimeError, ValueError, OSError) as err:  # cut short, not a zip archive, unreadable
        first_line = (str(err).strip().splitlines() or [""])[0]
        raise CheckpointMismatch(f"{path}: not a readable checkpoint ({type(err).__name__}: {first_line})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointMismatch(f"{path}: not a checkpoint dict")
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointMismatch(f"{path}: missing key(s) {', '.join(missing)}")
    for key, expected in (("format", CHECKPOINT_FORMAT), ("encoding_version", ENCODING_VERSION),
                          ("taxonomy", list(CLASS_IDS)), ("band_names", list(BAND_NAMES))):
        if ckpt[key] != expected:
            raise CheckpointMismatch(f"{path}: {key} is {ckpt[key]!r}, this code has {expected!r}")
    try:
        model = AlertTransformer(ModelConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointMismatch(f"{path}: model_config/state_dict do not fit this code: {err}") from err
    model.to(map_location).eval()
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model, meta

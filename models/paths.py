"""Where alertformer keeps its files: the shipped model, and the sample and labelled data (``data/``).

Defined once here, in the bottom layer, so every package finds the same files. The shipped
checkpoints are package data of `models` (installed with the wheel); ``data/`` is only in a
clone of the repository.
"""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "shipped" / "alertformer.pt"
# The opt-in faster model (models/shipped/RECIPE.md, "The small model"): distilled from the shipped one,
# 2.1-2.3x its light curves/s on Rubin windows on one CPU thread; serve it with scoring.checkpoint.
SMALL_CHECKPOINT = SHIPPED_CHECKPOINT.with_name("alertformer-small.pt")
# Names that scoring.checkpoint (and --checkpoint) accept for them, wherever the package is installed.
SHIPPED_CHECKPOINTS = {"shipped": SHIPPED_CHECKPOINT, "shipped-small": SMALL_CHECKPOINT}


def checkpoint_path(name_or_path) -> Path:
    """The file of a checkpoint given by path or by a `SHIPPED_CHECKPOINTS` name.

    >>> checkpoint_path("shipped-small") == SMALL_CHECKPOINT, checkpoint_path("out/x.pt")
    (True, PosixPath('out/x.pt'))
    """
    return SHIPPED_CHECKPOINTS.get(str(name_or_path), Path(name_or_path))


def data_dir() -> Path:
    """The data folder: ``$ALERTFORMER_DATA`` if set, else ``<repo>/data`` (see ``data/README.md``)."""
    env = os.environ.get("ALERTFORMER_DATA")
    return Path(env) if env else REPO_ROOT / "data"

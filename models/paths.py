"""Where alertformer keeps its files: the shipped model, and the sample and labelled data (``data/``).

Defined once here, in the bottom layer, so every package finds the same files. The shipped
checkpoint is package data of `models` (installed with the wheel); ``data/`` is only in a
clone of the repository.
"""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "shipped" / "alertformer.pt"


def data_dir() -> Path:
    """The data folder: ``$ALERTFORMER_DATA`` if set, else ``<repo>/data`` (see ``data/README.md``)."""
    env = os.environ.get("ALERTFORMER_DATA")
    return Path(env) if env else REPO_ROOT / "data"

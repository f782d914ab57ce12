"""Where the repository keeps its files: the sample and labelled data (``data/``).

Defined once here, in the bottom layer, so every package finds the same folder.
"""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The data folder: ``$ALERTFORMER_DATA`` if set, else ``<repo>/data`` (see ``data/README.md``)."""
    env = os.environ.get("ALERTFORMER_DATA")
    return Path(env) if env else REPO_ROOT / "data"

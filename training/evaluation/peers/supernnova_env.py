"""SuperNNova's own virtual environment: created and installed once, then reused."""
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from models.errors import AlertformerError

log = logging.getLogger(__name__)

SUPERNNOVA_REQUIREMENTS: tuple[str, ...] = (
    "supernnova==3.0.51",
    # astropy 5.3 (SuperNNova's pin) is built against NumPy 1.x and fails to import under NumPy 2.
    "numpy<2",
)
DEFAULT_SUPERNNOVA_VENV = (Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                           / "alertformer" / "supernnova-venv")
READY_MARKER = ".alertformer-ready"
VENV_INSTALL_TIMEOUT_S = 1800.0  # pip resolves and downloads SuperNNova's ~60 dependencies (mlflow...)


class SuperNNovaError(AlertformerError, RuntimeError):
    """SuperNNova could not be installed or run; the message carries the concrete error."""


def supernnova_venv_ready(venv_dir=DEFAULT_SUPERNNOVA_VENV) -> bool:
    """Whether `ensure_supernnova_venv` finished installing the current requirements in `venv_dir`
    (a check that never installs, for benches and tests)."""
    venv_dir = Path(venv_dir)
    marker = venv_dir / READY_MARKER
    return ((venv_dir / "bin" / "python").exists() and marker.is_file()
            and marker.read_text() == "\n".join(SUPERNNOVA_REQUIREMENTS))


def ensure_supernnova_venv(venv_dir=DEFAULT_SUPERNNOVA_VENV, python: str = sys.executable,
                           timeout_s: float = VENV_INSTALL_TIMEOUT_S) -> Path:
    """SuperNNova's own virtual environment, created and installed once, then reused.

    The environment is made with ``--system-site-packages`` because SuperNNova
    uses PyTorch without declaring it: it borrows this interpreter's torch.
    Its own pins (astropy<6, pandas<3, numpy<2) install into the environment
    and shadow the project's versions there only; the project's environment is
    never changed. A marker file records the installed requirements, so a
    half-finished install is redone.

    Parameters
    ----------
    venv_dir : str or Path
        Where the environment lives (default ``~/.cache/alertformer/supernnova-venv``).
    python : str
        Interpreter to create it from (it must have torch).
    timeout_s : float
        Limit of the pip install.

    Returns
    -------
    Path
        The environment's ``python``.

    Raises
    ------
    SuperNNovaError
        With pip's last output lines if the install fails.
    """
    venv_dir = Path(venv_dir)
    venv_python = venv_dir / "bin" / "python"
    marker = venv_dir / READY_MARKER
    wanted = "\n".join(SUPERNNOVA_REQUIREMENTS)
    if venv_python.exists() and marker.exists() and marker.read_text() == wanted:
        return venv_python
    log.info("creating SuperNNova environment venv=%s requirements=%s", venv_dir, " ".join(SUPERNNOVA_REQUIREMENTS))
    if venv_dir.exists():
        shutil.rmtree(venv_dir)
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    steps = [[python, "-m", "venv", "--system-site-packages", str(venv_dir)],
             [str(venv_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              *SUPERNNOVA_REQUIREMENTS],
             [str(venv_python), "-c", "import multiprocessing; multiprocessing.cpu_count = lambda: 3; "
              "import torch, supernnova.validation.validate_onthefly"]]
    for cmd in steps:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as err:
            raise SuperNNovaError(f"{' '.join(cmd[:4])}...: timed out after {timeout_s:.0f} s") from err
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise SuperNNovaError(f"{' '.join(cmd[:4])}... exited {done.returncode}:\n{tail}")
    marker.write_text(wanted)
    return venv_python

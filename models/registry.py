"""The model registry: every version with its checkpoint, metadata and lineage, and the champion.

Layout under the registry root (a local directory, or one shared by every scorer host)::

    versions/v0001/model.pt      the checkpoint (models.checkpoint format)
    versions/v0001/meta.json     version, parent, created, lineage (labels used), metrics
    champion.json                {"version": ..., "stack": [...], "history": [{"version", "at", "reason"}, ...]}
    .lock                        serialises version allocation and champion changes (flock)

Writes are atomic: a version is assembled in ``versions/.tmp-*`` and renamed into place,
and ``champion.json`` is replaced with ``os.replace``. A crash at any point leaves either
the old state or the new one; leftover ``.tmp-*`` directories are removed by the next writer.
"""
import fcntl
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from models.checkpoint import load_checkpoint
from models.errors import AlertformerError

CHECKPOINT_NAME = "model.pt"
META_NAME = "meta.json"


class RegistryError(AlertformerError, ValueError):
    """An unknown version, an empty registry or an impossible promotion; the message says which."""


@dataclass(frozen=True)
class VersionInfo:
    version: str
    path: Path
    meta: dict

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_NAME


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, value: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


class ModelRegistry:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        try:
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            (self.root / ".lock").touch()  # the registry must be writable: promotions lock this file
        except OSError as err:
            raise RegistryError(f"registry {self.root} cannot be used: {err.strerror}: {err.filename}") from None

    @contextmanager
    def _locked(self):
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def versions(self) -> list[VersionInfo]:
        """All complete versions, oldest first."""
        return [self.get(p.name) for p in sorted(self.versions_dir.glob("v[0-9]*")) if (p / META_NAME).is_file()]

    def get(self, version: str) -> VersionInfo:
        path = self.versions_dir / version
        if not (path / META_NAME).is_file():
            raise RegistryError(f"no model version {version!r} in {self.root}")
        return VersionInfo(version, path, json.loads((path / META_NAME).read_text()))

    def register(self, checkpoint: str | os.PathLike, *, parent: str | None = None, lineage: dict | None = None,
                 metrics: dict | None = None, note: str = "") -> VersionInfo:
        """Copy a checkpoint in as the next version (checked loadable first); return its info.

        `metrics` default to the checkpoint's own (its evaluation at training time).
        """
        _, checkpoint_meta = load_checkpoint(checkpoint)  # refuse files this code cannot serve
        if metrics is None:
            metrics = checkpoint_meta.get("metrics", {})
        with self._locked():
            for stale in self.versions_dir.glob(".tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            numbers = [int(p.name[1:]) for p in self.versions_dir.glob("v[0-9]*")]
            version = f"v{max(numbers, default=0) + 1:04d}"
            tmp = Path(tempfile.mkdtemp(dir=self.versions_dir, prefix=".tmp-"))
            shutil.copyfile(checkpoint, tmp / CHECKPOINT_NAME)
            meta = {"version": version, "parent": parent, "created_utc": _utc_now(), "lineage": lineage or {},
                    "metrics": metrics, "note": note}
            (tmp / META_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True))
            for name in (CHECKPOINT_NAME, META_NAME):
                with open(tmp / name, "rb") as f:
                    os.fsync(f.fileno())
            os.chmod(tmp, 0o755)
            os.rename(tmp, self.versions_dir / version)
            _fsync_dir(self.versions_dir)
        return self.get(version)

    def _champion_file(self) -> dict:
        path = self.root / "champion.json"
        return json.loads(path.read_text()) if path.is_file() else {"version": None, "stack": [], "history": []}

    def champion(self) -> str | None:
        return self._champion_file()["version"]

    def history(self) -> list[dict]:
        return self._champion_file()["history"]

    def promote(self, version: str, reason: str) -> None:
        self.get(version)  # must exist
        with self._locked():
            state = self._champion_file()
            state["history"].append({"version": version, "at": _utc_now(), "reason": reason})
            state["stack"].append(version)
            state["version"] = version
            _write_json_atomic(self.root / "champion.json", state)

    def rollback(self, reason: str = "rollback") -> str:
        """Make the champion before the current one champion again; return its version.

        Promotions form a stack: each rollback undoes the latest promotion still in force.
        """
        with self._locked():
            state = self._champion_file()
            if len(state["stack"]) < 2:
                raise RegistryError("nothing to roll back to: no earlier champion")
            state["stack"].pop()
            state["version"] = state["stack"][-1]
            state["history"].append({"version": state["version"], "at": _utc_now(), "reason": reason})
            _write_json_atomic(self.root / "champion.json", state)
            return state["version"]

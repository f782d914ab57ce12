"""The built wheel, installed into a fresh virtualenv, carries the shipped models and every schema.

The virtualenv sees the system's packages (torch is not downloaded again), which include this
project installed in editable mode; the checks run outside the repository and assert that every
module comes from the virtualenv's copy of the wheel.
"""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Not part of a source distribution: the clone's data, tests, caches and build outputs.
NOT_COPIED = shutil.ignore_patterns(".git", "data", "tests", "build", "out", ".stack", "*.egg-info",
                                    "__pycache__", ".pytest_cache", ".hypothesis")
PIP_TIMEOUT_S = 300  # building the wheel and installing it without dependencies: ~10 s here

CHECKS = textwrap.dedent("""
    import json, sys
    from importlib import resources
    from pathlib import Path

    venv = Path(sys.argv[1]).resolve()
    import alertformer, models, stream
    from models.paths import SHIPPED_CHECKPOINTS
    for module in (alertformer, models, stream):
        assert venv in Path(module.__file__).resolve().parents, module.__file__
    for checkpoint in SHIPPED_CHECKPOINTS.values():
        assert venv in checkpoint.resolve().parents and checkpoint.is_file(), checkpoint

    from stream import avro_io
    schemas = sorted(p.name for p in resources.files("stream.schemas").iterdir() if p.name.endswith(".avsc"))
    for name in schemas:
        avro_io.load_schema(name.removesuffix(".avsc"))
    schemas += sorted(f"previous/{p.name}" for p in resources.files("stream.schemas").joinpath("previous").iterdir())
    from stream.decode import elasticc
    decode_schemas = sorted(p.name for p in elasticc.SCHEMA_DIR.glob("*.avsc"))

    from stream import web
    web_dir = Path(web.__file__).parent
    web_files = sorted(str(p.relative_to(web_dir)) for p in web_dir.rglob("*") if p.suffix in (".html", ".js", ".css"))

    from alertformer import score
    result = score(mjd=[60000.1, 60001.2, 60003.0, 60005.1], band=["ztf-g", "ztf-r", "ztf-g", "ztf-r"],
                   flux=[30.0, 60.0, 110.0, 140.0], flux_err=[2.0, 2.5, 2.2, 3.0], flux_unit="uJy")
    print(json.dumps({"schemas": schemas, "decode_schemas": decode_schemas, "web_files": web_files, "model_version": result.model_version,
                      "sum_probs": sum(result.probabilities.values()), "sn_likelihood": result.sn_likelihood}))
""")


def run(*args, cwd):
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_virtualenv_scores_with_its_own_model_and_schemas(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=NOT_COPIED)
    run(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
        cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("alertformer-*.whl")
    venv = tmp_path / "venv"
    # Without pip of its own (Debian's python3 lacks ensurepip): the system's pip installs into it.
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=tmp_path)
    run(venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)

    import json

    from alertformer import __version__
    from models.paths import SHIPPED_CHECKPOINT
    from stream.score import checkpoint_version

    outside = tmp_path / "elsewhere"  # not the repository: its packages must not be importable from cwd
    outside.mkdir()
    assert run(venv / "bin" / "alertformer", "--version", cwd=outside).strip() == f"alertformer {__version__}"
    report = json.loads(run(venv / "bin" / "python", "-c", CHECKS, venv, cwd=outside))
    schemas = REPO / "stream" / "schemas"
    assert report["schemas"] == (sorted(p.name for p in schemas.glob("*.avsc"))
                                 + sorted(f"previous/{p.name}" for p in (schemas / "previous").glob("*.avsc")))
    assert report["decode_schemas"] == sorted(p.name for p in (REPO / "stream" / "decode" / "schemas").glob("*.avsc"))
    web_dir = REPO / "stream" / "web"
    assert report["web_files"] == sorted(str(p.relative_to(web_dir)) for p in web_dir.rglob("*")
                                         if p.suffix in (".html", ".js", ".css"))
    assert report["sum_probs"] == pytest.approx(1.0, abs=1e-4) and 0.0 <= report["sn_likelihood"] <= 1.0
    assert report["model_version"] == checkpoint_version(SHIPPED_CHECKPOINT, {})  # the shipped model's bytes

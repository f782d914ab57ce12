#!/usr/bin/env bash
# Prepare, on a machine that reaches PyPI, the wheels that deploy/gpu_bench.sh installs on a GPU host
# that has PyTorch (and the usual scientific stack) but cannot fetch anything.
#
#   deploy/gpu_wheels.sh [DIR]        (default DIR: .whl in the repository, which git ignores)
#
# Downloads binary wheels of alertformer's runtime dependencies and of everything they need, for
# the GPU host's Python ($GPU_PYTHON_VERSION, default 3.12) on manylinux x86_64, then removes the
# ones such a host already has (torch, numpy, numba, pyarrow, ... : $GPU_HOST_HAS), so that the
# host's builds, which its torch was made with, stay in use. lsst-alert-packet's own needs
# (lsst-resources, lsst-sdm-schemas, ...) come with it. Copy DIR beside the repository on the host.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
dir=${1:-$repo/.whl}
version=${GPU_PYTHON_VERSION:-3.12}
# Importable on the GPU image already (its package list: the device notes of the project's tools).
host_has=${GPU_HOST_HAS:-"torch numpy numba llvmlite pyarrow tqdm packaging pyyaml typing_extensions
  certifi idna urllib3 requests charset_normalizer attrs anyio h11 httpcore httpx sniffio six
  python_dateutil filelock fsspec jinja2 markupsafe psutil"}

mkdir -p "$dir"
# The runtime dependencies of pyproject.toml, torch left out (the host has its own CUDA build).
mapfile -t requirements < <("$python" - "$repo/pyproject.toml" <<'EOF'
import sys, tomllib
for requirement in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]:
    if not requirement.startswith("torch"):
        print(requirement)
EOF
)
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
           manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
"$python" -m pip download -q --disable-pip-version-check --only-binary=:all: --implementation cp \
  --python-version "$version" "${platforms[@]}" -d "$dir" "${requirements[@]}"

normal() { tr 'A-Z-' 'a-z_' <<< "$1"; }
removed=0
for wheel in "$dir"/*.whl; do
  name=$(normal "$(basename "$wheel" | cut -d- -f1)")
  for have in $host_has; do
    if [ "$name" = "$(normal "$have")" ]; then rm -f "$wheel"; removed=$((removed + 1)); fi
  done
done
echo "gpu_wheels: $(ls "$dir"/*.whl | wc -l) wheels in $dir ($(du -sh "$dir" | cut -f1)), $removed left out" \
     "that the GPU host has" >&2

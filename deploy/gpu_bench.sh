#!/usr/bin/env bash
# The GPU device check, ~2 minutes on an H200: model throughput (batch sizes 1-16,384, fp32 and bf16), the
# scoring loop in process (pipelined), and, when Kafka and Redis can be started here, the service end to end.
#
#   deploy/gpu_bench.sh [--wheels DIR] [--quick] [options of alertformer bench-gpu]
#
# On a GPU host with only PyTorch (and the usual scientific stack) installed and nothing to fetch from,
# the other Python dependencies come as wheels prepared beside the repository by deploy/gpu_wheels.sh
# on a connected machine: --wheels DIR (default: .whl in the repository, when present) installs them
# into a temporary folder on PYTHONPATH, without touching the host's packages. The script checks that
# the scoring code imports before measuring, and names what is missing if it does not.
#
# Starts a private Kafka + Redis (deploy/stack.sh, free ports, a temporary directory) if Java,
# redis-server and the Kafka jars (in $ALERTFORMER_CACHE, default ~/.cache/alertformer) are present,
# and stops it at the end; without them the pipeline part is skipped and said so in the report.
# The JSON report goes to $OUT/gpu_bench.json ($OUT defaults to out/gpu-bench). On a machine
# without CUDA it runs on the CPU (fp32, and int8 measured beside it: not a serving precision).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
cache=${ALERTFORMER_CACHE:-$HOME/.cache/alertformer}
stack_timeout_s=150
export OUT=${OUT:-$repo/out/gpu-bench}
mkdir -p "$OUT"
cd "$repo"

site="" stack_dir=""
cleanup() {
  [ -z "$stack_dir" ] || { deploy/stack.sh down || true; rm -rf "$stack_dir"; }
  [ -z "$site" ] || rm -rf "$site"
}
trap cleanup EXIT

wheels=""
[ -d "$repo/.whl" ] && wheels="$repo/.whl"
if [ "${1:-}" = "--wheels" ]; then
  [ -n "${2:-}" ] && [ -d "$2" ] || { echo "gpu_bench: --wheels needs a folder of wheels (deploy/gpu_wheels.sh)" >&2; exit 2; }
  wheels=$(cd "$2" && pwd)
  shift 2
fi
if [ -n "$wheels" ]; then
  site=$(mktemp -d -t alertformer-gpu-site.XXXXXX)
  "$python" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir \
    --target "$site" "$wheels"/*.whl
  export PYTHONPATH="$repo:$site${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu_bench: $(ls "$wheels"/*.whl | wc -l) wheels from $wheels installed into $site" >&2
else
  export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! missing=$("$python" -c 'import alertformer.cli, bench.gpu, stream.service, stream.decode' 2>&1); then
  echo "gpu_bench: the scoring code does not import here: ${missing##*$'\n'}" >&2
  echo "gpu_bench: prepare its dependencies with deploy/gpu_wheels.sh on a connected machine and pass --wheels DIR" >&2
  exit 2
fi

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

stack_args=()
if command -v java > /dev/null && command -v redis-server > /dev/null \
    && ls "$cache"/kafka-*/libs/kafka_2.13-*.jar > /dev/null 2>&1; then
  ALERTFORMER_STACK_DIR=$(mktemp -d -t alertformer-gpu-stack.XXXXXX)
  KAFKA_PORT=$(free_port) KAFKA_CONTROLLER_PORT=$(free_port) REDIS_PORT=$(free_port)
  export ALERTFORMER_STACK_DIR KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_PORT ALERTFORMER_CACHE=$cache
  stack_dir=$ALERTFORMER_STACK_DIR
  if timeout "$stack_timeout_s" deploy/stack.sh up; then
    stack_args=(--bootstrap "127.0.0.1:$KAFKA_PORT" --redis-url "redis://127.0.0.1:$REDIS_PORT/0")
  else
    echo "gpu_bench: the stack did not start; measuring without it" >&2
  fi
else
  echo "gpu_bench: no Java, redis-server or Kafka jars in $cache; measuring without the stack" >&2
fi

"$python" -m alertformer.cli bench-gpu "${stack_args[@]}" "$@"

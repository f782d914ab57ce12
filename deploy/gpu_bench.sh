#!/usr/bin/env bash
# The GPU device check, ~2 minutes on an H200: model throughput (batch sizes 1-16,384, fp32 and bf16), the
# scoring loop in process (pipelined), and, when Kafka and Redis can be started here, the service end to end.
#
#   deploy/gpu_bench.sh [--quick] [options of alertformer bench-gpu]
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

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

stack_args=()
if command -v java > /dev/null && command -v redis-server > /dev/null \
    && ls "$cache"/kafka-*/libs/kafka_2.13-*.jar > /dev/null 2>&1; then
  ALERTFORMER_STACK_DIR=$(mktemp -d -t alertformer-gpu-stack.XXXXXX)
  KAFKA_PORT=$(free_port) KAFKA_CONTROLLER_PORT=$(free_port) REDIS_PORT=$(free_port)
  export ALERTFORMER_STACK_DIR KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_PORT ALERTFORMER_CACHE=$cache
  trap 'deploy/stack.sh down || true; rm -rf "$ALERTFORMER_STACK_DIR"' EXIT
  if timeout "$stack_timeout_s" deploy/stack.sh up; then
    stack_args=(--bootstrap "127.0.0.1:$KAFKA_PORT" --redis-url "redis://127.0.0.1:$REDIS_PORT/0")
  else
    echo "gpu_bench: the stack did not start; measuring without it" >&2
  fi
else
  echo "gpu_bench: no Java, redis-server or Kafka jars in $cache; measuring without the stack" >&2
fi

"$python" -m alertformer.cli bench-gpu "${stack_args[@]}" "$@"

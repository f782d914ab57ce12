#!/usr/bin/env bash
# Install everything alertformer needs on a fresh Debian machine (idempotent):
# Debian's redis-server (and chromium for the browser tests), the Python package with its test extras, the Kafka jars.
# Java 17 and Maven must already be present (they fetch and run Kafka).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}

need() { command -v "$1" > /dev/null || { echo "install: $1 is required ($2)" >&2; exit 1; }; }
need java "Java 17 runs the Kafka broker"
need mvn "Maven fetches the Kafka jars from Maven Central"

# The web pages' browser tests drive Debian's Chromium through its chromedriver (never a downloaded browser).
if ! command -v redis-server > /dev/null || ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
  echo "install: redis-server, chromium and chromium-driver from Debian" >&2
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq redis-server chromium chromium-driver > /dev/null
fi

if ! "$python" -c "import alertformer, pytest, hypothesis, selenium, starlette" 2> /dev/null \
   || [ "$repo/pyproject.toml" -nt "$repo/.stack/installed" ]; then
  echo "install: Python package alertformer[test,eval] (editable)" >&2
  "$python" -m pip install -q --disable-pip-version-check -e "$repo[test,eval]"
  mkdir -p "$repo/.stack" && touch "$repo/.stack/installed"
fi

"$repo/deploy/stack.sh" fetch

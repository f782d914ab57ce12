#!/usr/bin/env bash
# The README's main job on the local default stack: bring up Kafka + Redis, replay the real sample
# alerts (2 ZTF packets, 25 Rubin LSSTCam alerts) plus one malformed packet, run the stream over
# them and show what came out: one JSON line per decoded alert and the dead-letter record.
# The stack stays up afterwards (deploy/stack.sh down stops it).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=${ALERTFORMER_SAMPLE_DATA:-$repo/../shared/data}
python=${PYTHON:-python3}
cd "$repo"

deploy/stack.sh up
topic=alerts
group=demo-$(date +%s)
printf '\x00\x00\x00\x03\xe8truncated' > "$repo/.stack/malformed.bin"
alertformer replay "$data/ztf/alerts" "$data/rubin" "$repo/.stack/malformed.bin" --topic "$topic" --quiet
echo "--- decoded alerts (stream: consume → decode → dead-letter, one transaction per batch)"
alertformer decode --group "$group" --idle-timeout-s 5
echo "--- dead-letter topic"
"$python" -m stream.peek alertformer.deadletter --max 5

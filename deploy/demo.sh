#!/usr/bin/env bash
# The README's main job on the local default stack:
#   1. bring up Kafka + Redis (deploy/stack.sh up),
#   2. replay the real sample alerts (2 ZTF packets, 25 Rubin LSSTCam alerts) and one malformed
#      packet, and stream a simulated Rubin season (alertformer simulate),
#   3. score them with the shipped model (alertformer run, exactly once, until the stream is idle),
#   4. show what came out: scored alerts, ELAsTiCC2 classifications, follow-up requests, the
#      dead-letter record, and the monitor's view of Redis,
#   5. close with one line of what the run committed: alerts scored, dead letters, follow-up
#      requests, scored alerts by top class.
# The stack stays up afterwards (make down stops it).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data=${ALERTFORMER_DATA:-$repo/data}
cd "$repo"
section() { printf '\n=== %s\n' "$*"; }

deploy/stack.sh up
section "replay: real ZTF and Rubin sample alerts + one malformed packet → topic 'alerts'"
mkdir -p .stack
printf '\x00\x00\x00\x03\xe8truncated' > .stack/malformed.bin
alertformer replay "$data/ztf/alerts" "$data/rubin" .stack/malformed.bin --topic alerts --quiet
section "simulate: a Rubin alert stream of 40 simulated objects (realistic class mix) → topic 'alerts'"
alertformer simulate --n 40 --seed "$(date +%s)" --topic alerts --quiet
section "run: score everything (stops after 5 s without new alerts)"
alertformer run --idle-timeout-s 5 > .stack/run-summary.json
section "scored alerts (first 3; subscribe with filters, e.g. --where 'sn_likelihood>0.8')"
alertformer subscribe --kind scored --from-beginning --max 3 --idle-timeout-s 5
section "ELAsTiCC2 brokerClassification records (first 2)"
alertformer subscribe --kind classifications --from-beginning --max 2 --idle-timeout-s 5
section "follow-up requests (first 5)"
alertformer subscribe --kind followup --from-beginning --max 5 --idle-timeout-s 5
section "dead letters"
alertformer subscribe --kind deadletter --from-beginning --max 3 --idle-timeout-s 5
section "monitor (one frame; run 'alertformer monitor' for the live view)"
alertformer monitor --once --top 5
section "summary"
printf 'demo: this run committed %s\n' "$(cat .stack/run-summary.json)"

#!/usr/bin/env bash
# The README's main job on the local default stack:
#   1. bring up Kafka + Redis (deploy/stack.sh up),
#   2. replay the real sample alerts (2 ZTF packets, 25 Rubin LSSTCam alerts) and one malformed
#      packet, and stream a simulated Rubin season (alertformer simulate),
#   3. score them with the shipped model (alertformer run, exactly once, until the stream is idle),
#   4. show what came out: scored alerts, ELAsTiCC2 classifications, follow-up requests, the
#      dead-letter record, and the monitor's view of Redis,
#   5. close with one line of what the run committed: alerts scored, dead letters, follow-up
#      requests, scored alerts by top class,
#   6. start the web pages (alertformer web, in the background) and print their address.
# The stack and the web server stay up afterwards (make down stops both).
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
section "web: candidates, object and status pages (alertformer web; logs in .stack/web.log)"
web_port=${ALERTFORMER_WEB__PORT:-8080}
if [ -f .stack/web.pid ]; then kill "$(cat .stack/web.pid)" 2> /dev/null || true; fi
nohup alertformer web > .stack/web.log 2>&1 &
echo $! > .stack/web.pid
if python3 - "$web_port" <<'PY'
import sys, time, urllib.request
for _ in range(100):  # 20 s
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/status", timeout=2)
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
PY
then
  printf 'demo: the web view of this night is at http://127.0.0.1:%s/ (make down stops it)\n' "$web_port"
else
  printf 'demo: alertformer web did not answer on port %s; see .stack/web.log\n' "$web_port" >&2
fi

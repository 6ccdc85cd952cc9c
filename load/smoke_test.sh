#!/usr/bin/env bash
# loadgen against a real ratelimitd: 3000 requests at 1500/s on one key
# whose limit is 500 per hour must give exactly 500 x 200 and 2500 x 429,
# no error, nothing unsent; then 1 s of enumeration keys: all 200.
# usage: smoke_test.sh RATELIMITD LOADGEN
set -euo pipefail
RLD=$1
LOADGEN=$2
T=$(mktemp -d)
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
cat >"$T/rl.yaml" <<'YAML'
server: {workers: 1}
rate_limiter:
  policies:
    - name: bench
      algorithm: sliding_log
      windows: [{max_requests: 500, duration: 1h}]
YAML
"$RLD" --config "$T/rl.yaml" --listen 127.0.0.1:0 --port-file "$T/port" --quiet &
PID=$!
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.05; done
port=$(cat "$T/port")
field() { sed -E "s/.*\"$1\":([0-9]+).*/\\1/" <<<"$2"; }
out=$("$LOADGEN" --target "127.0.0.1:$port" --rate 1500 --duration 2 \
  --connections 16 --dist hot --hot-share 1 --hist-out "$T/hist.txt")
echo "$out"
[ "$(field completed "$out")" -eq 3000 ] || { echo "completed != 3000"; exit 1; }
[ "$(field status_200 "$out")" -eq 500 ] || { echo "200s != 500"; exit 1; }
[ "$(field status_429 "$out")" -eq 2500 ] || { echo "429s != 2500"; exit 1; }
[ "$(field errors "$out")" -eq 0 ] && [ "$(field unsent "$out")" -eq 0 ] ||
  { echo "errors or unsent"; exit 1; }
[ "$(wc -l <"$T/hist.txt")" -ge 10 ] || { echo "no histogram"; exit 1; }
out=$("$LOADGEN" --target "127.0.0.1:$port" --rate 1000 --duration 1 \
  --connections 8 --dist enum)
echo "$out"
[ "$(field status_200 "$out")" -eq 1000 ] || { echo "enum: 200s != 1000"; exit 1; }
echo "load_smoke: ok"

#!/usr/bin/env bash
# Soak: ratelimitd under steady open-loop load (load/loadgen) for a fixed
# time, its RSS sampled at a fixed interval. Asserts:
#   - RSS never above SOAK_MAX_RSS_MB (120, the seed's "stable < 120 MB");
#   - after the warm-up, RSS grows by at most SOAK_MAX_GROWTH_KB (the last
#     sample's minus the first post-warm-up sample's, and the largest
#     sample's minus it: flat, not merely bounded);
#   - no transport error and no status other than 200/429.
#
# Usage: scripts/soak.sh [SECONDS] [RATELIMITD] [LOADGEN]
#   default 1800 s (30 min; not in CI), build-bench binaries.
#   `make test` runs a 60-second version (scripts/test.sh, deploy stage).
# env: SOAK_RATE (5000/s), SOAK_INTERVAL (10 s), SOAK_WARMUP (300 s, or a
#      third of a run shorter than 15 min), SOAK_MAX_RSS_MB (120),
#      SOAK_MAX_GROWTH_KB (4096), SOAK_STORE (memory | redis),
#      SOAK_KEYS (200000 random keys), SOAK_CSV (write the samples there)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-1800}
RLD=${2:-build-bench/daemon/ratelimitd}
LOADGEN=${3:-build-bench/load/loadgen}
RATE=${SOAK_RATE:-5000}
INTERVAL=${SOAK_INTERVAL:-10}
if [ -n "${SOAK_WARMUP:-}" ]; then
  WARMUP=$SOAK_WARMUP
elif [ "$SECS" -ge 900 ]; then
  WARMUP=300
else
  WARMUP=$((SECS / 3))
fi
MAX_RSS_KB=$((${SOAK_MAX_RSS_MB:-120} * 1024))
MAX_GROWTH_KB=${SOAK_MAX_GROWTH_KB:-4096}
STORE=${SOAK_STORE:-memory}
KEYS=${SOAK_KEYS:-200000}
T=$(mktemp -d)
RLD_PID=""
LG_PID=""
REDIS_PID=""
cleanup() {
  for p in $LG_PID $RLD_PID $REDIS_PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "soak: FAILED: $*" >&2
  exit 1
}
[ -x "$RLD" ] && [ -x "$LOADGEN" ] || fail "build ratelimitd and loadgen first ($RLD, $LOADGEN)"

redis_line=""
if [ "$STORE" = redis ]; then
  rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
  REDIS_PID=$!
  for _ in $(seq 1 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
  redis_line="  redis: {addrs: [\"127.0.0.1:$rport\"], timeout: 500ms}"
fi
# Two policies as in production: a per-key limit that some keys reach
# (sliding log, exact) and a generous one (sliding counter).
cat >"$T/soak.yaml" <<YAML
server: {workers: 2, shutdown_grace: 5s}
rate_limiter:
$redis_line
  memory: {max_size: 64MB}
  policies:
    - name: bench
      algorithm: sliding_log
      windows: [{max_requests: 50, duration: 10s}, {max_requests: 1000, duration: 1m}]
YAML
"$RLD" --config "$T/soak.yaml" --listen 127.0.0.1:0 --port-file "$T/port" --quiet \
  >/dev/null 2>"$T/rld.log" &
RLD_PID=$!
for _ in $(seq 1 200); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || fail "ratelimitd did not start: $(cat "$T/rld.log")"
port=$(cat "$T/port")

"$LOADGEN" --target "127.0.0.1:$port" --rate "$RATE" --duration "$SECS" \
  --connections 64 --dist random --keys "$KEYS" >"$T/loadgen.json" &
LG_PID=$!
echo "soak: ${SECS}s at ${RATE}/s ($STORE store, $KEYS keys), RSS every ${INTERVAL}s, warm-up ${WARMUP}s; $(uptime | sed 's/.*load average/load average/')" >&2
echo "t_s,rss_kb" >"$T/rss.csv"
start=$SECONDS
while kill -0 "$LG_PID" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$RLD_PID/status" 2>/dev/null) ||
    fail "ratelimitd died: $(tail -5 "$T/rld.log")"
  echo "$((SECONDS - start)),$rss" >>"$T/rss.csv"
  [ "$rss" -le "$MAX_RSS_KB" ] || fail "RSS $rss kB above $MAX_RSS_KB kB"
  sleep "$INTERVAL"
done
wait "$LG_PID" || fail "loadgen failed"
LG_PID=""
[ -n "${SOAK_CSV:-}" ] && cp "$T/rss.csv" "$SOAK_CSV"
result=$(cat "$T/loadgen.json")
echo "$result"
kill -TERM "$RLD_PID"
wait "$RLD_PID" || fail "ratelimitd exit status $? on SIGTERM"
RLD_PID=""

python3 - "$T/rss.csv" "$WARMUP" "$MAX_GROWTH_KB" "$result" <<'PY'
import csv, json, sys
rows = [(int(r["t_s"]), int(r["rss_kb"])) for r in csv.DictReader(open(sys.argv[1]))]
warm, bound, res = int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
post = [kb for t, kb in rows if t >= warm]
if len(post) < 2:
    sys.exit(f"soak: FAILED: only {len(post)} samples after the warm-up")
base = post[0]
growth_last, growth_max = post[-1] - base, max(post) - base
print(json.dumps({"soak_seconds": rows[-1][0], "samples": len(rows),
                  "rss_kb_first": rows[0][1], "rss_kb_after_warmup": base,
                  "rss_kb_last": post[-1], "rss_kb_max": max(kb for _, kb in rows),
                  "growth_kb_last": growth_last, "growth_kb_max": growth_max,
                  "bound_kb": bound, "achieved_rps": res["achieved_rps"],
                  "p99_us": res["p99_us"], "errors": res["errors"]}))
bad = []
if growth_last > bound or growth_max > bound:
    bad.append(f"RSS grew {growth_last} kB (max {growth_max} kB) after warm-up, bound {bound} kB")
if res["errors"] or res["status_other"]:
    bad.append(f"{res['errors']} transport errors, {res['status_other']} unexpected statuses")
if bad:
    sys.exit("soak: FAILED: " + "; ".join(bad))
print("soak: ok")
PY

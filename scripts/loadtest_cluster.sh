#!/usr/bin/env bash
# The seed's deployment in miniature (issue 9 item 3): a 3-master Redis
# Cluster (redis-server processes on free loopback ports, created with
# redis-cli --cluster create, stopped by PID), N ratelimitd processes with
# rate_limiter.cache enabled and mode: cluster, and load/loadgen (open
# loop, constant rate) spreading its connections over every instance with
# the random, hot-key and enumeration key distributions.
#
# Per run, one JSON line: throughput, p50/p99/p999, RSS per instance
# (after the run), and per master the Redis commands/s from INFO
# commandstats deltas (client commands = EVALSHA/EVAL round trips; all =
# every command executed, scripts' inner commands included), plus the
# machine's load average before and after.
#
# Usage: scripts/loadtest_cluster.sh [OUT.jsonl]
#   env: CL_SECONDS (10), CL_WARMUP (2), CL_INSTANCES (3), CL_WORKERS (4
#        per instance), CL_RATES ("2000 5000 10000"), CL_DISTS ("random hot
#        enum"), CL_REPEAT (1), CL_CONNECTIONS (96), CL_LIMIT (per key per
#        second, 3000: the hot key (90% of the load) is under it at 2000
#        offered, over it at 5000 and 10000/s), BUILD_DIR
#        (build-bench; "" = use RLD and LOADGEN from the environment),
#        CL_NICE (0; e.g. -10 runs Redis, ratelimitd and loadgen ahead of
#        other work on a shared machine, as root; recorded in each line)
# Not part of `make test` (about 15 s per run); `CL_SMOKE=1` runs one 1 s
# run per distribution and checks the answers (load/CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/priority.sh
. scripts/priority.sh
rl_priority "${CL_NICE:-0}" "$PWD/scripts/$(basename "$0")" "$@"
OUT=${1:-load/results/cluster-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
SECS=${CL_SECONDS:-10}
WARM=${CL_WARMUP:-2}
INSTANCES=${CL_INSTANCES:-3}
WORKERS=${CL_WORKERS:-4}
RATES=${CL_RATES:-2000 5000 10000}
DISTS=${CL_DISTS:-random hot enum}
REPEAT=${CL_REPEAT:-1}
CONNS=${CL_CONNECTIONS:-96}
LIMIT=${CL_LIMIT:-3000}
SMOKE=${CL_SMOKE:-0}
NICE=${CL_NICE:-0}
N=(nice -n "$NICE")
if [ "$SMOKE" = 1 ]; then
  SECS=1 WARM=0 RATES=${CL_RATES:-1000} REPEAT=1 CONNS=${CL_CONNECTIONS:-24}
fi
T=$(mktemp -d)
REDIS_PIDS=()
RLD_PIDS=()
cleanup() {
  for p in "${RLD_PIDS[@]}" "${REDIS_PIDS[@]}"; do
    kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$(dirname "$OUT")"

BUILD=${BUILD_DIR-build-bench}
if [ -n "$BUILD" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j 2 --target ratelimitd loadgen >/dev/null
  RLD=$BUILD/daemon/ratelimitd
  LOADGEN=$BUILD/load/loadgen
fi
: "${RLD:?set BUILD_DIR or RLD}" "${LOADGEN:?set BUILD_DIR or LOADGEN}"

# A free port whose cluster bus port (+10000) is free too.
free_cluster_port() {
  python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    if p + 10000 > 65535: continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000)); print(p); break
    except OSError: pass
    finally: b.close(); s.close()'
}

start_cluster() {
  PORTS=()
  for i in 1 2 3; do
    local port dir=$T/redis-$i
    port=$(free_cluster_port)
    mkdir -p "$dir"
    "${N[@]}" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
      --cluster-node-timeout 2000 --dir "$dir" --logfile "$dir/log" \
      --daemonize no >/dev/null &
    REDIS_PIDS+=($!)
    PORTS+=("$port")
  done
  for p in "${PORTS[@]}"; do
    for _ in $(seq 1 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
  done
  local addrs=()
  for p in "${PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$T/create.log" 2>&1 ||
    { cat "$T/create.log" >&2; exit 1; }
  for _ in $(seq 1 200); do
    local ok=0
    for p in "${PORTS[@]}"; do
      redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' && ok=$((ok + 1))
    done
    [ "$ok" = 3 ] && return 0
    sleep 0.05
  done
  echo "loadtest_cluster: the cluster did not come up" >&2
  exit 1
}

start_daemons() {
  RLD_PORTS=()
  cat >"$T/rl.yaml" <<YAML
server: {workers: $WORKERS}
rate_limiter:
  redis: {addrs: ["127.0.0.1:${PORTS[0]}"], mode: cluster, pool_size: 4, timeout: 200ms}
  cache: {enabled: true, ttl: 1s, max_size: 32MB}
  fallback: {mode: open}
  policies:
    - name: bench
      algorithm: sliding_counter
      windows: [{max_requests: $LIMIT, duration: 1s}]
YAML
  for i in $(seq 1 "$INSTANCES"); do
    rm -f "$T/port.$i"
    "${N[@]}" "$RLD" --config "$T/rl.yaml" --listen 127.0.0.1:0 --port-file "$T/port.$i" \
      --quiet >/dev/null 2>>"$T/rld-$i.log" &
    RLD_PIDS+=($!)
  done
  for i in $(seq 1 "$INSTANCES"); do
    for _ in $(seq 1 200); do [ -s "$T/port.$i" ] && break; sleep 0.05; done
    [ -s "$T/port.$i" ] || { cat "$T/rld-$i.log" >&2; exit 1; }
    RLD_PORTS+=("$(cat "$T/port.$i")")
  done
  for p in "${RLD_PORTS[@]}"; do # ready once the topology is known
    for _ in $(seq 1 200); do
      curl -fs "http://127.0.0.1:$p/ready" >/dev/null && break
      sleep 0.05
    done
  done
}

# "client all" per master: EVALSHA+EVAL calls, every command (INFO,
# CLUSTER and COMMAND excluded: ours and the clients' topology reads).
node_calls() { # port
  redis-cli -p "$1" info commandstats |
    awk -F'[:=,]' '/^cmdstat_/ && $1 != "cmdstat_info" && $1 != "cmdstat_cluster" &&
      $1 != "cmdstat_command" {s += $3}
      $1 == "cmdstat_evalsha" || $1 == "cmdstat_eval" {c += $3}
      END {print c + 0, s + 0}'
}
per_s() { awk -v n="$1" -v s="$SECS" -v w="$WARM" 'BEGIN {printf "%d\n", n / (s + w) + 0.5}'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
load1() { cut -d' ' -f1 /proc/loadavg; }

run_load() { # dist rate
  local dist=$1 rate=$2 targets=() before=() l0 line
  for p in "${RLD_PORTS[@]}"; do targets+=(--target "127.0.0.1:$p"); done
  for p in "${PORTS[@]}"; do before+=("$(node_calls "$p")"); done
  l0=$(load1)
  line=$("${N[@]}" "$LOADGEN" "${targets[@]}" --rate "$rate" --duration "$SECS" --warmup "$WARM" \
    --connections "$CONNS" --threads 1 --dist "$dist" --label cluster)
  local client="" all="" rss="" sep="" i=0 c0 a0 c1 a1
  for p in "${PORTS[@]}"; do
    read -r c0 a0 <<<"${before[$i]}"
    read -r c1 a1 <<<"$(node_calls "$p")"
    client="$client$sep$(per_s $((c1 - c0)))"
    all="$all$sep$(per_s $((a1 - a0)))"
    sep=","
    i=$((i + 1))
  done
  sep=""
  for pid in "${RLD_PIDS[@]}"; do rss="$rss$sep$(rss_kb "$pid")"; sep=","; done
  line="${line%\}},\"store\":\"cluster\",\"cache\":true,\"instances\":$INSTANCES,\"masters\":3,\"rss_kb\":[$rss],\"redis_client_cmds_per_s_per_node\":[$client],\"redis_cmds_per_s_per_node\":[$all],\"nice\":$NICE,\"load1_before\":$l0,\"load1_after\":$(load1),\"utc\":\"$(date -u +%H:%M:%S)\"}"
  echo "$line" >>"$OUT"
  echo "$line"
}

smoke_check() { # line dist: every request answered 200 or 429, none unsent
  python3 - "$1" "$2" <<'PY'
import json, sys
r, dist = json.loads(sys.argv[1]), sys.argv[2]
bad = r["errors"] + r["status_other"] + r["unsent"]
assert r["completed"] > 0 and bad == 0, r
assert r["status_200"] + r["status_429"] == r["completed"], r
assert sum(r["redis_client_cmds_per_s_per_node"]) > 0, r
if dist == "random":  # keys hash to every master
    assert all(c > 0 for c in r["redis_client_cmds_per_s_per_node"]), r
PY
}

echo "loadtest_cluster: $(nproc) cores, $(uptime | sed 's/.*load average/load average/'), $INSTANCES x ratelimitd ($WORKERS workers, cache on), 3 masters, ${SECS}s + ${WARM}s warm-up per run -> $OUT" >&2
start_cluster
start_daemons
for dist in $DISTS; do
  for rate in $RATES; do
    for _ in $(seq 1 "$REPEAT"); do
      line=$(run_load "$dist" "$rate")
      echo "$line"
      [ "$SMOKE" = 1 ] && smoke_check "$line" "$dist"
    done
  done
done
[ "$SMOKE" = 1 ] && echo "loadtest_cluster: smoke ok" >&2
exit 0

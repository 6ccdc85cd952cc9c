#!/usr/bin/env bash
# Open-loop load tests of ratelimitd with load/loadgen (constant arrival
# rate, latency from the intended send time), for docs/Performance.md:
#
#   sweep     one ratelimitd, memory store and Redis store, key
#             distributions random / hot / enum, offered rate stepped up:
#             throughput, p50/p99/p999, RSS, Redis commands/s (INFO
#             commandstats delta) and the machine's load average
#   multi     N ratelimitd processes (2 workers each) sharing one Redis (the seed's
#             "10 instances + Redis" in miniature): aggregate rate,
#             latency, RSS per instance, Redis commands/s
#
# Usage: scripts/loadtest.sh [sweep|multi|all] [OUT.jsonl]
#   env: LOAD_SECONDS (10), LOAD_WARMUP (2), LOAD_RATES_MEMORY,
#        LOAD_RATES_REDIS (space-separated), LOAD_DISTS ("random hot enum"),
#        LOAD_INSTANCES (4), LOAD_MULTI_RATES, BUILD_DIR (build-bench),
#        LOAD_STORES ("memory redis": the sweep's stores),
#        LOAD_NICE (0; e.g. -10 runs ratelimitd, Redis and loadgen ahead of
#        other work on a shared machine, as root, in a session of its own
#        with that autogroup nice (scripts/priority.sh); recorded in each
#        line),
#        LOAD_REPEAT (1: runs per point; scripts/plots.sh and the tables in
#        docs/Performance.md take the run with the median p99)
# Prints and appends one JSON line per run. Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/priority.sh
. scripts/priority.sh
rl_priority "${LOAD_NICE:-0}" "$PWD/scripts/$(basename "$0")" "$@"
WHAT=${1:-all}
OUT=${2:-load/results/loadtest-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
BUILD=${BUILD_DIR:-build-bench}
SECS=${LOAD_SECONDS:-10}
WARM=${LOAD_WARMUP:-2}
DISTS=${LOAD_DISTS:-random hot enum}
RATES_MEM=${LOAD_RATES_MEMORY:-5000 10000 20000 30000 40000 50000}
RATES_REDIS=${LOAD_RATES_REDIS:-2000 5000 10000 15000 20000 25000}
INSTANCES=${LOAD_INSTANCES:-4}
MULTI_RATES=${LOAD_MULTI_RATES:-10000 20000 30000}
REPEAT=${LOAD_REPEAT:-1}
STORES=${LOAD_STORES:-memory redis}
NICE=${LOAD_NICE:-0}
N=(nice -n "$NICE")
T=$(mktemp -d)
PIDS=()
REDIS_PID=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$(dirname "$OUT")"

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j 2 --target ratelimitd loadgen >/dev/null
RLD=$BUILD/daemon/ratelimitd
LOADGEN=$BUILD/load/loadgen

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_redis() {
  REDIS_PORT=$(free_port)
  "${N[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --logfile "$T/redis.log" >/dev/null &
  REDIS_PID=$!
  for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "loadtest: redis-server did not start" >&2
  exit 1
}

# "TOTAL CLIENT": every command Redis executed (commandstats counts the
# GET/SET/TIME a script runs too; INFO excluded) and the commands clients
# sent (EVALSHA/EVAL: one round trip per decision).
redis_calls() {
  redis-cli -p "$REDIS_PORT" info commandstats |
    awk -F'[:=,]' '/^cmdstat_/ && $1 != "cmdstat_info" {s += $3}
      $1 == "cmdstat_evalsha" || $1 == "cmdstat_eval" {c += $3}
      END {print s + 0, c + 0}'
}

# Starts one ratelimitd: PID in $STARTED, port in $T/port.<name>.
start_rld() { # name store workers
  local name=$1 store=$2 workers=$3
  {
    echo "server: {workers: $workers}"
    echo "rate_limiter:"
    if [ "$store" = redis ]; then
      echo "  redis: {addrs: [\"127.0.0.1:$REDIS_PORT\"], pool_size: 16, timeout: 200ms}"
    fi
    echo "  memory: {max_size: 64MB}"
    echo "  policies:"
    echo "    - name: bench"
    echo "      algorithm: sliding_counter"
    echo "      windows: [{max_requests: 1000000000000, duration: 1m}]"
  } >"$T/$name.yaml"
  rm -f "$T/port.$name"
  "${N[@]}" "$RLD" --config "$T/$name.yaml" --listen 127.0.0.1:0 --port-file "$T/port.$name" \
    --quiet >/dev/null 2>>"$T/$name.log" &
  STARTED=$!
  PIDS+=("$STARTED")
  for _ in $(seq 1 200); do [ -s "$T/port.$name" ] && break; sleep 0.05; done
  [ -s "$T/port.$name" ] || { cat "$T/$name.log" >&2; exit 1; }
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system) of the given PIDs, in clock ticks.
cpu_ticks() {
  local s=0 p
  for p in "$@"; do s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$s"
}
redis_cpu_us() {
  redis-cli -p "$REDIS_PORT" info cpu |
    awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%d\n", s * 1e6}'
}
load1() { cut -d' ' -f1 /proc/loadavg; }

# One loadgen run against the given ports; prints the enriched JSON line.
run_load() { # label store dist rate connections threads ports...
  local label=$1 store=$2 dist=$3 rate=$4 conns=$5 threads=$6
  shift 6
  local targets=()
  for p in "$@"; do targets+=(--target "127.0.0.1:$p"); done
  local calls0="0 0" calls1="0 0" l0 line
  [ -n "$REDIS_PID" ] && calls0=$(redis_calls)
  l0=$(load1)
  local t0 r0=0 r1=0 hz
  hz=$(getconf CLK_TCK)
  t0=$(cpu_ticks "${RUN_PIDS[@]}")
  [ -n "$REDIS_PID" ] && r0=$(redis_cpu_us)
  line=$("${N[@]}" "$LOADGEN" "${targets[@]}" --rate "$rate" --duration "$SECS" --warmup "$WARM" \
    --connections "$conns" --threads "$threads" --dist "$dist" --label "$label")
  [ -n "$REDIS_PID" ] && calls1=$(redis_calls)
  [ -n "$REDIS_PID" ] && r1=$(redis_cpu_us)
  local t1 n_req cpu_rld cpu_redis
  t1=$(cpu_ticks "${RUN_PIDS[@]}")
  # CPU per request over every request sent (warm-up included).
  local unsent
  unsent=$(sed -E 's/.*"unsent":([0-9]+).*/\1/' <<<"$line")
  n_req=$(python3 -c "print(max(1, round($rate * ($SECS + $WARM)) - $unsent))")
  cpu_rld=$(python3 -c "print(round(($t1 - $t0) * 1e6 / $hz / $n_req, 2))")
  cpu_redis=$(python3 -c "print(round(($r1 - $r0) / $n_req, 2))")
  local rss="" sep=""
  for pid in "${RUN_PIDS[@]}"; do rss="$rss$sep$(rss_kb "$pid")"; sep=","; done
  local redis_ops redis_client
  read -r a0 c0 <<<"$calls0"
  read -r a1 c1 <<<"$calls1"
  redis_ops=$(((a1 - a0) / (SECS + WARM)))
  redis_client=$(((c1 - c0) / (SECS + WARM)))
  line="${line%\}},\"store\":\"$store\",\"instances\":$#,\"rss_kb\":[$rss],\"redis_client_cmds_per_s\":$redis_client,\"redis_cmds_per_s\":$redis_ops,\"cpu_us_per_req\":$cpu_rld,\"redis_cpu_us_per_req\":$cpu_redis,\"nice\":$NICE,\"load1_before\":$l0,\"load1_after\":$(load1),\"utc\":\"$(date -u +%H:%M:%S)\"}"
  echo "$line" | tee -a "$OUT"
}

sweep() {
  for store in $STORES; do
    if [ "$store" = redis ]; then
      start_redis
      rates=$RATES_REDIS
      workers=2 # rl_decide_async: a worker keeps many decisions in flight
    else
      rates=$RATES_MEM
      workers=2
    fi
    for dist in $DISTS; do
      # A fresh daemon (and Redis contents) per distribution: enum fills the store.
      [ -n "$REDIS_PID" ] && redis-cli -p "$REDIS_PORT" flushall >/dev/null
      start_rld "one-$store-$dist" "$store" "$workers"
      pid=$STARTED
      port=$(cat "$T/port.one-$store-$dist")
      RUN_PIDS=("$pid")
      for rate in $rates; do
        for _ in $(seq 1 "$REPEAT"); do
          run_load "sweep" "$store" "$dist" "$rate" 128 1 "$port"
        done
      done
      kill "$pid"
      wait "$pid" 2>/dev/null || true
    done
    if [ -n "$REDIS_PID" ]; then
      kill "$REDIS_PID"
      wait "$REDIS_PID" 2>/dev/null || true
      REDIS_PID=""
    fi
  done
}

multi() {
  start_redis
  local ports=() pids=()
  for i in $(seq 1 "$INSTANCES"); do
    start_rld "multi-$i" redis 2
    pids+=("$STARTED")
    ports+=("$(cat "$T/port.multi-$i")")
  done
  RUN_PIDS=("${pids[@]}")
  for rate in $MULTI_RATES; do
    for _ in $(seq 1 "$REPEAT"); do
      run_load "multi" redis random "$rate" 256 1 "${ports[@]}"
    done
  done
  for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  kill "$REDIS_PID"
  wait "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=""
}

echo "loadtest: $(nproc) cores, $(uptime | sed 's/.*load average/load average/'), ${SECS}s + ${WARM}s warm-up per run -> $OUT" >&2
case "$WHAT" in
sweep) sweep ;;
multi) multi ;;
all)
  sweep
  multi
  ;;
*)
  echo "usage: scripts/loadtest.sh [sweep|multi|all] [OUT.jsonl]" >&2
  exit 2
  ;;
esac

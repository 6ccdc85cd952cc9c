#!/usr/bin/env bash
# ratelimitd under wrk, next to nginx `return 200` in the same run on the
# same machine (both on loopback, 2 workers each, wrk with 2 threads on the
# same cores):
#   1. nginx return 200, maximum rate
#   2. ratelimitd POST /v1/check, one hot key, maximum rate
#   3. ratelimitd POST /v1/check, 100000 random keys, maximum rate
#   4. ratelimitd at half of (2)'s rate, paced: latency percentiles
#   5. ratelimitd on the Redis store (a redis-server on loopback started
#      here), one hot key and 100000 random keys, maximum rate; then paced
#      at half of its hot-key rate: latency percentiles
# Prints one JSON line per run and a summary with the two targets
# (>= 0.5x nginx on the memory path; p99 <= 2 ms at half load), and the
# Redis path's figures next to them (no target: it is recorded).
#
# Usage: scripts/bench_daemon.sh BUILD_DIR   (env: BENCH_SECONDS, default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:?usage: scripts/bench_daemon.sh BUILD_DIR}
SECS=${BENCH_SECONDS:-10}
# Server workers (nginx worker_processes and ratelimitd workers alike) and
# wrk threads; the machine's cores are shared by all of them.
WORKERS=${BENCH_WORKERS:-2}
WRK_THREADS=${BENCH_WRK_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
DIR=$(mktemp -d)
RLD_PID=""
NGX_PID=""
RRLD_PID=""
REDIS_PID=""
cleanup() {
  [ -n "$RLD_PID" ] && kill "$RLD_PID" 2>/dev/null && wait "$RLD_PID" 2>/dev/null
  [ -n "$RRLD_PID" ] && kill "$RRLD_PID" 2>/dev/null && wait "$RRLD_PID" 2>/dev/null
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  [ -n "$NGX_PID" ] && kill -QUIT "$NGX_PID" 2>/dev/null && wait "$NGX_PID" 2>/dev/null
  rm -rf "$DIR"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench_daemon: nothing listens on $1" >&2
  return 1
}

# wrk with a script plus the JSON reporter; prints the JSON line.
run_wrk() { # name url conns script...
  local name=$1 url=$2 conns=$3
  shift 3
  cat "$@" bench/wrk/report.lua >"$DIR/$name.lua"
  local line
  line=$(wrk -t"$WRK_THREADS" -c"$conns" -d"${SECS}s" --timeout 2s -s "$DIR/$name.lua" "$url" | tail -n 1)
  echo "{\"bench\":\"$name\",\"connections\":$conns,${line#\{}"
}

mkdir -p "$DIR/tmp"
NGX_PORT=$(free_port)
sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$NGX_PORT|g" \
  -e "s|worker_processes 2;|worker_processes $WORKERS;|" \
  bench/wrk/nginx-return200.conf >"$DIR/nginx.conf"
/usr/sbin/nginx -p "$DIR" -c "$DIR/nginx.conf" -g 'daemon off;' &
NGX_PID=$!
"$BUILD_DIR/daemon/ratelimitd" --config bench/wrk/ratelimitd-bench.yaml \
  --workers "$WORKERS" --port-file "$DIR/rld.port" --quiet &
RLD_PID=$!
wait_port "$NGX_PORT"
for _ in $(seq 1 100); do [ -s "$DIR/rld.port" ] && break; sleep 0.05; done
RLD_PORT=$(cat "$DIR/rld.port")
wait_port "$RLD_PORT"

echo "bench_daemon: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), ${SECS}s per run, $CONNS connections, $WORKERS server workers, $WRK_THREADS wrk threads" >&2
empty=$DIR/empty.lua
: >"$empty"
nginx_line=$(run_wrk nginx_return200 "http://127.0.0.1:$NGX_PORT/" "$CONNS" "$empty")
echo "$nginx_line"
hot_line=$(run_wrk ratelimitd_hot_key "http://127.0.0.1:$RLD_PORT/v1/check" "$CONNS" bench/wrk/check_hot.lua)
echo "$hot_line"
keys_line=$(run_wrk ratelimitd_100k_keys "http://127.0.0.1:$RLD_PORT/v1/check" "$CONNS" bench/wrk/check_keys.lua)
echo "$keys_line"

rps() { sed -E 's/.*"rps":([0-9]+).*/\1/' <<<"$1"; }
p99_of() { sed -E 's/.*"p99_us":([0-9]+).*/\1/' <<<"$1"; }

# Paced run at a target rate: prints wrk's JSON line.
# Each connection sends one request every PACE_MS plus the response time.
# A short pace keeps the connection count low (on 2 cores, wrk's own timers
# for hundreds of paced connections compete with the server and inflate the
# latency it reports); the response time (~0.4 ms) makes the first run fall
# short, and one correction, capped at +-25%, brings it onto the target.
paced_run() { # name port target_rps
  local name=$1 port=$2 target=$3 pace=2
  local conns=$(((target * (pace * 1000 + 400) + 999999) / 1000000))
  [ "$conns" -lt 1 ] && conns=1
  local line
  line=$(PACE_MS=$pace run_wrk "$name" "http://127.0.0.1:$port/v1/check" "$conns" bench/wrk/check_paced.lua)
  local got fixed max min
  got=$(rps "$line")
  [ "$got" -lt 1 ] && got=1
  fixed=$(((conns * target + got - 1) / got))
  max=$((conns * 5 / 4 + 1))
  min=$((conns * 3 / 4))
  [ "$min" -lt 1 ] && min=1
  [ "$fixed" -gt "$max" ] && fixed=$max
  [ "$fixed" -lt "$min" ] && fixed=$min
  PACE_MS=$pace run_wrk "$name" "http://127.0.0.1:$port/v1/check" "$fixed" bench/wrk/check_paced.lua
}

nginx_rps=$(rps "$nginx_line")
hot_rps=$(rps "$hot_line")
half=$((hot_rps / 2))
half_line=$(paced_run ratelimitd_half_load "$RLD_PORT" "$half")
echo "$half_line"
kill "$RLD_PID" 2>/dev/null && wait "$RLD_PID" 2>/dev/null
RLD_PID=""

# The Redis path: the same policy on a local redis-server (no persistence).
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$DIR" --logfile "$DIR/redis.log" &
REDIS_PID=$!
wait_port "$REDIS_PORT"
sed -e "s|^rate_limiter:|rate_limiter:\n  redis: {addrs: [\"127.0.0.1:$REDIS_PORT\"], pool_size: 4, timeout: 200ms}|" \
  bench/wrk/ratelimitd-bench.yaml >"$DIR/rld-redis.yaml"
"$BUILD_DIR/daemon/ratelimitd" --config "$DIR/rld-redis.yaml" \
  --workers "$WORKERS" --port-file "$DIR/rrld.port" --quiet &
RRLD_PID=$!
for _ in $(seq 1 100); do [ -s "$DIR/rrld.port" ] && break; sleep 0.05; done
RRLD_PORT=$(cat "$DIR/rrld.port")
wait_port "$RRLD_PORT"
redis_hot_line=$(run_wrk ratelimitd_redis_hot_key "http://127.0.0.1:$RRLD_PORT/v1/check" "$CONNS" bench/wrk/check_hot.lua)
echo "$redis_hot_line"
redis_keys_line=$(run_wrk ratelimitd_redis_100k_keys "http://127.0.0.1:$RRLD_PORT/v1/check" "$CONNS" bench/wrk/check_keys.lua)
echo "$redis_keys_line"
redis_hot_rps=$(rps "$redis_hot_line")
redis_half_line=$(paced_run ratelimitd_redis_half_load "$RRLD_PORT" $((redis_hot_rps / 2)))
echo "$redis_half_line"
redis_calls=$(redis-cli -p "$REDIS_PORT" info commandstats | grep -E '^cmdstat_evalsha:' | sed -E 's/.*calls=([0-9]+).*/\1/')
echo "bench_daemon: redis EVALSHA calls in total: ${redis_calls:-0}" >&2

python3 - "$nginx_rps" "$hot_rps" "$(rps "$keys_line")" "$half" "$(rps "$half_line")" "$(p99_of "$half_line")" \
  "$redis_hot_rps" "$(rps "$redis_keys_line")" "$(rps "$redis_half_line")" "$(p99_of "$redis_half_line")" <<'PY'
import json, sys
n, hot, keys, target, got, p99, rhot, rkeys, rgot, rp99 = map(float, sys.argv[1:])
print(json.dumps({"bench": "ratelimitd_summary", "nginx_rps": n,
                  "hot_rps": hot, "hot_vs_nginx": round(hot / n, 3),
                  "keys_vs_nginx": round(keys / n, 3),
                  "half_load_target_rps": target, "half_load_rps": got,
                  "half_load_p99_ms": p99 / 1000,
                  "redis_hot_rps": rhot, "redis_keys_rps": rkeys,
                  "redis_hot_vs_nginx": round(rhot / n, 3),
                  "redis_half_load_rps": rgot,
                  "redis_half_load_p99_ms": rp99 / 1000,
                  "pass_throughput": hot / n >= 0.5,
                  "pass_p99": p99 <= 2000}))
PY

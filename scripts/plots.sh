#!/usr/bin/env bash
# Draws docs/img/*.png (gnuplot) from the committed load test results:
#   latency-memory.png, latency-redis.png  p50/p99/p999 vs offered rate,
#                                          one colour per key distribution
#   redis-ops.png                          Redis commands/s vs decisions/s
#   soak-rss.png                           RSS over the soak run
# or, with --cluster, from scripts/loadtest_cluster.sh's results:
#   cluster-latency.png    p50/p99/p999 vs offered rate per distribution
#   cluster-redis-ops.png  Redis commands/s per master vs decisions/s
#
# Usage: scripts/plots.sh LOADTEST.jsonl [SOAK.csv]
#        scripts/plots.sh --cluster CLUSTER.jsonl
#   e.g. scripts/plots.sh load/results/loadtest.jsonl load/results/soak-rss.csv
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=docs/img
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$OUT"
export PYTHONPATH=$PWD/scripts

# p50 and two more columns (ms) against the offered rate, one colour per
# key distribution, from PREFIX{random,hot,enum}.dat (column 1: rate,
# column 3: p50).
latency_plot() { # png title xlabel prefix col_a label_a col_b label_b
  gnuplot <<GP
set terminal pngcairo size 1000,540 font "DejaVu Sans,10"
set output "$1"
set title "$2"
set xlabel "$3"
set ylabel "latency (ms, log scale)"
set logscale y
set grid
set key outside right top
set yrange [0.05:*]
d(i) = "$4".word("random hot enum", i).".dat"
n(i) = word("random hot enum", i)
plot for [i=1:3] d(i) u 1:3 w lp lc i pt 7 dt 1 t n(i)." p50", \
     for [i=1:3] d(i) u 1:$5 w lp lc i pt 5 dt 2 t n(i)." $6", \
     for [i=1:3] d(i) u 1:$7 w lp lc i pt 9 dt 3 t n(i)." $8", \
     5 w l lc rgb "red" lw 2 t "seed target p99 = 5 ms"
GP
}
if [ "${1:-}" = --cluster ]; then
  # shellcheck source=scripts/plots_cluster.sh
  . scripts/plots_cluster.sh "${2:?usage: scripts/plots.sh --cluster CLUSTER.jsonl}"
  exit 0
fi
RESULTS=${1:?usage: scripts/plots.sh LOADTEST.jsonl [SOAK.csv]}
SOAK=${2:-}

# One .dat per (store, dist) of the sweep: rate achieved p50 p99 p999 (ms),
# and redis.dat: decisions/s, client commands/s, all commands/s.
python3 - "$RESULTS" "$T" <<'PY'
import sys
from loadresults import read_rows, median_runs, ms
out = sys.argv[2]
# Repeated runs of one point (LOAD_REPEAT): keep the one with the median p99.
rows = median_runs(read_rows(sys.argv[1]),
                   lambda r: (r["label"], r["store"], r["dist"], r["target_rps"]))
for store in ("memory", "redis"):
    for dist in ("random", "hot", "enum"):
        sel = [r for r in rows if r["label"] == "sweep" and r["store"] == store and r["dist"] == dist]
        with open(f"{out}/{store}-{dist}.dat", "w") as f:
            for r in sorted(sel, key=lambda r: r["target_rps"]):
                f.write("%d %d %.3f %.3f %.3f %.3f\n" % (r["target_rps"], r["achieved_rps"],
                        r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["p999_us"] / 1e3,
                        r["best_p99_us"] / 1e3))
# The tables of docs/Performance.md, on stdout.
print("| run | store | keys | offered/s | achieved/s | unsent | p50 ms | p99 ms | p99 best ms | p99.9 ms | "
      "RSS MB | ratelimitd CPU µs/req | Redis cmds/s (client / all) | Redis CPU µs/req | load1 |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
order = {"memory": 0, "redis": 1}
for r in sorted(rows, key=lambda r: (r["label"] != "sweep", order[r["store"]], r["dist"], r["target_rps"])):
    rss = "/".join("%.0f" % (k / 1024) for k in r["rss_kb"])
    redis = "%d / %d" % (r["redis_client_cmds_per_s"], r["redis_cmds_per_s"]) if r["store"] == "redis" else "-"
    rcpu = "%.1f" % r.get("redis_cpu_us_per_req", 0) if r["store"] == "redis" else "-"
    print("| %s%s | %s | %s | %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %.1f-%.1f |" % (
        r["label"], " x%d" % r["instances"] if r["instances"] > 1 else "", r["store"], r["dist"],
        r["target_rps"], r["achieved_rps"], r["unsent"], ms(r["p50_us"]), ms(r["p99_us"]),
        ms(r["best_p99_us"]), ms(r["p999_us"]), rss, r.get("cpu_us_per_req", "n/a"), redis, rcpu,
        r["load1_before"], r["load1_after"]))
with open(f"{out}/redis.dat", "w") as f:
    for r in sorted((r for r in rows if r["store"] == "redis"), key=lambda r: r["achieved_rps"]):
        f.write("%d %d %d %s\n" % (r["achieved_rps"], r["redis_client_cmds_per_s"],
                r["redis_cmds_per_s"], r["label"] + "-" + r["dist"]))
PY

for store in memory redis; do
  latency_plot "$OUT/latency-$store.png" \
    "ratelimitd ($store store): latency vs offered rate (open loop, load/loadgen)" \
    "offered rate (requests/s)" "$T/$store-" 4 "p99 (median run)" 6 "p99 (best run)"
done

gnuplot <<GP
set terminal pngcairo size 1000,540 font "DejaVu Sans,10"
set output "$OUT/redis-ops.png"
set title "Redis load vs decisions (one Redis, ratelimitd Redis store, no cache)"
set xlabel "decisions/s (achieved)"
set ylabel "Redis commands/s"
set grid
set key outside right top
plot "$T/redis.dat" u 1:2 w p pt 7 t "client commands (EVALSHA: round trips)", \
     "$T/redis.dat" u 1:3 w p pt 5 t "all commands incl. those run by the scripts", \
     10000 w l lc rgb "red" lw 2 t "seed target 10k ops/s per node"
GP

if [ -n "$SOAK" ]; then
  gnuplot <<GP
set terminal pngcairo size 900,400 font "DejaVu Sans,10"
set output "$OUT/soak-rss.png"
set title "ratelimitd RSS during the soak (scripts/soak.sh)"
set datafile separator ","
set xlabel "time (min)"
set ylabel "RSS (MB)"
set grid
set yrange [0:130]
plot "$SOAK" every ::1 u (\$1/60):(\$2/1024) w l lw 2 t "RSS", \
     120 w l lc rgb "red" t "bound 120 MB", 100 w l lc rgb "orange" dt 2 t "seed 100 MB per instance"
GP
fi
ls -la "$OUT"/*.png >&2

# Plots and the Markdown table of scripts/loadtest_cluster.sh's results
# (docs/Performance.md): docs/img/cluster-latency.png (p50/p99/p999 vs
# offered rate, one colour per key distribution) and
# docs/img/cluster-redis-ops.png (Redis client commands/s per master vs
# decisions/s). Repeated runs of one point: the run with the median p99.
#
# Sourced by scripts/plots.sh --cluster CLUSTER.jsonl (its $OUT, $T and
# PYTHONPATH); the table goes to stdout.
RESULTS=$1

python3 - "$RESULTS" "$T" <<'PY'
import sys
from loadresults import read_rows, median_runs, ms
out = sys.argv[2]
rows = median_runs(read_rows(sys.argv[1]), lambda r: (r["dist"], r["target_rps"]))
for dist in ("random", "hot", "enum"):
    with open(f"{out}/{dist}.dat", "w") as f:
        for r in sorted((r for r in rows if r["dist"] == dist), key=lambda r: r["target_rps"]):
            c = r["redis_client_cmds_per_s_per_node"]
            f.write("%d %d %.3f %.3f %.3f %d %d %d\n" % (r["target_rps"], r["achieved_rps"],
                    r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["p999_us"] / 1e3, c[0], c[1], c[2]))
print("| keys | offered/s | achieved/s | unsent | 200 / 429 | p50 ms | p99 ms | p99.9 ms | "
      "Redis client cmds/s per master | all cmds/s per master | cmds per decision | RSS MB per instance | load1 |")
print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | --- | ---: | --- | --- |")
order = {"random": 0, "hot": 1, "enum": 2}
for r in sorted(rows, key=lambda r: (order[r["dist"]], r["target_rps"])):
    c, a = r["redis_client_cmds_per_s_per_node"], r["redis_cmds_per_s_per_node"]
    per = sum(c) / max(1, r["achieved_rps"])
    print("| %s | %d | %d | %d | %d / %d | %s | %s | %s | %s | %s | %.3f | %s | %.1f-%.1f |" % (
        r["dist"], r["target_rps"], r["achieved_rps"], r["unsent"], r["status_200"], r["status_429"],
        ms(r["p50_us"]), ms(r["p99_us"]), ms(r["p999_us"]), " / ".join(map(str, c)),
        " / ".join(map(str, a)), per, " / ".join("%.0f" % (k / 1024) for k in r["rss_kb"]),
        r["load1_before"], r["load1_after"]))
PY

latency_plot "$OUT/cluster-latency.png" \
  "3 x ratelimitd (cache on) on a 3-master Redis Cluster: latency vs offered rate (open loop)" \
  "offered rate, all instances (requests/s)" "$T/" 4 p99 5 p99.9

gnuplot <<GP
set terminal pngcairo size 1000,540 font "DejaVu Sans,10"
set output "$OUT/cluster-redis-ops.png"
set title "Redis client commands/s per master vs decisions/s (3 x ratelimitd, cache on)"
set xlabel "decisions/s (achieved, all instances)"
set ylabel "EVALSHA/EVAL per second, per master"
set grid
set key outside right top
d = "$T/"
plot for [m=6:8] d."random.dat" u 2:m w lp lc 1 pt (m-1) t sprintf("random, master %d", m-5), \
     for [m=6:8] d."hot.dat" u 2:m w lp lc 2 pt (m-1) t sprintf("hot, master %d", m-5), \
     for [m=6:8] d."enum.dat" u 2:m w lp lc 3 pt (m-1) t sprintf("enum, master %d", m-5), \
     10000 w l lc rgb "red" lw 2 t "seed target 10k ops/s per node"
GP
ls -la "$OUT"/cluster-*.png >&2

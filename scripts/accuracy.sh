#!/usr/bin/env bash
# The full accuracy table of issue 5 (tests/accuracy/test_accuracy.c with
# RL_ACCURACY_FULL=1): every algorithm x mode x trace x N (1, 4, 8) x store
# (one redis-server, a 3-master cluster; the fallback-local modes fallback
# and outage on one redis-server only), written into docs/Accuracy.md
# between the accuracy-table markers with the command, date and load.
# 600 runs: about 23 minutes with RL_ACCURACY_MS=2000. Usage: scripts/accuracy.sh [build-dir]
# (RL_ACCURACY_MS sets each run's length, default 3000).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-accuracy}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRL_BUILD_BENCH=OFF \
  >/dev/null
cmake --build "$dir" -j 2 --target test_accuracy >/dev/null
load_before=$(uptime | sed 's/.*load average: //')
table=$(mktemp)
trap 'rm -f "$table"' EXIT
RL_ACCURACY_FULL=1 "$dir/tests/accuracy/test_accuracy" | grep '^|' >"$table"
load_after=$(uptime | sed 's/.*load average: //')
doc=docs/Accuracy.md
{
  sed '/<!-- accuracy-table:begin -->/q' "$doc"
  echo
  echo "Made by \`scripts/accuracy.sh\` (RL_ACCURACY_MS=${RL_ACCURACY_MS:-3000})" \
    "on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
    "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //');" \
    "load average before: $load_before, after: $load_after."
  echo
  cat "$table"
  echo
  sed -n '/<!-- accuracy-table:end -->/,$p' "$doc"
} >"$doc.new"
mv "$doc.new" "$doc"
echo "wrote $(grep -c '^| [rc]' "$table") rows into $doc"

#!/usr/bin/env bash
# Runs every benchmark binary (BUILD_DIR/bench/bench_*) and prints their JSON
# lines on stdout (diagnostics go to stderr). Exits non-zero if a binary is
# missing or fails; a missed performance target is reported in the JSON
# ("pass": false), not turned into a failure.
#
# Usage: scripts/bench.sh BUILD_DIR
# Environment passed through to the binaries: BENCH_REP_MS, BENCH_REPS,
# BENCH_KEYS (see bench/bench_memory.c).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BUILD_DIR=${1:?usage: scripts/bench.sh BUILD_DIR}

shopt -s nullglob
benches=()
for f in "$BUILD_DIR"/bench/bench_*; do
  [ -f "$f" ] && [ -x "$f" ] && benches+=("$f")
done
if [ ${#benches[@]} -eq 0 ]; then
  echo "bench.sh: no bench_* binary in $BUILD_DIR/bench (build it first)" >&2
  exit 1
fi

status=0
for b in "${benches[@]}"; do
  echo "bench.sh: running $b" >&2
  start=$SECONDS
  if ! "$b"; then
    echo "bench.sh: $b FAILED" >&2
    status=1
  fi
  echo "bench.sh: $b took $((SECONDS - start)) s" >&2
done
exit $status

#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined)
# and runs each for FUZZ_SECONDS (default 60) on a copy of its committed
# corpus. New inputs land in build-fuzz/corpus/<target>; add interesting
# ones to fuzz/corpus/<target> by hand (or with -merge=1).
#   scripts/fuzz.sh [target...]     targets: request config
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request config)
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DRL_FUZZ=ON -DRL_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  cp -n fuzz/corpus/"$t"/* "build-fuzz/corpus/$t/" 2>/dev/null || true
  echo "fuzz: $t for ${SECONDS_EACH}s"
  build-fuzz/fuzz/fuzz_"$t" -max_total_time="$SECONDS_EACH" -max_len=8192 \
    -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
    "build-fuzz/corpus/$t" 2>&1 | tail -n 12
done

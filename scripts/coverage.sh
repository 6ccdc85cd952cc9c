#!/usr/bin/env bash
# Line coverage of the library (src/) under the test suite; fails below the
# gate. The report goes to coverage/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
GATE=${COVERAGE_GATE:-90}
cmake -S . -B build-cov -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=gcc \
  -DRL_COVERAGE=ON -DRL_BUILD_BENCH=OFF >/dev/null
cmake --build build-cov -j "$(nproc)" >/dev/null
find build-cov -name '*.gcda' -delete
ctest --test-dir build-cov -j "$(nproc)" --timeout 900 >/dev/null ||
  { echo "coverage: tests failed"; ctest --test-dir build-cov --rerun-failed --output-on-failure; exit 1; }
mkdir -p coverage
gcovr -r . --filter 'src/' --html-details coverage/index.html \
  --txt coverage/summary.txt --fail-under-line "$GATE" build-cov
tail -n 3 coverage/summary.txt

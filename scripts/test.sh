#!/usr/bin/env bash
# Runs every test stage and prints one closing line "N passed, N failed".
# Stages: lint; default build (gcc); valgrind on it; ASan+UBSan (clang);
# TSan (clang); coverage gate (gcc --coverage, gcovr >= 90% of src/).
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
passed=0
failed=0
failures=()

stage() { # name, command...
  local name=$1
  shift
  echo "=== $name"
  local start=$SECONDS
  if "$@"; then
    echo "=== $name: ok ($((SECONDS - start)) s)"
    passed=$((passed + 1))
  else
    echo "=== $name: FAILED ($((SECONDS - start)) s)"
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

tests_passed=0
tests_failed=0

# ctest in a build dir configured with extra cmake args; adds its counts to
# the totals.
ctest_build() { # dir, cmake args...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DRL_BUILD_BENCH=OFF "$@" >/dev/null || return 1
  if ! cmake --build "$dir" -j "$JOBS" >"$dir/build.log" 2>&1; then
    grep -E 'error|warning' "$dir/build.log" | head -40
    return 1
  fi
  local log="$dir/ctest.log" rc
  # Timing tests against real servers get one retry on a loaded machine;
  # a first failure stays visible in the log above the retry.
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS" --timeout 600 \
    --repeat until-pass:2 \
    2>&1 | tee "$log" | grep -Ev '^ +Start |^Test project|^Internal ctest'
  rc=${PIPESTATUS[0]}
  local line total failed
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  failed=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
  tests_passed=$((tests_passed + ${total:-0} - ${failed:-0}))
  tests_failed=$((tests_failed + ${failed:-0}))
  return "$rc"
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp

stage lint scripts/lint.sh
stage "tests (gcc, RelWithDebInfo)" ctest_build build-test \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc
stage "valgrind memcheck (gcc build)" scripts/valgrind.sh build-test
stage "tests (clang, ASan+UBSan)" ctest_build build-asan \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
  -DRL_SANITIZE=address,undefined
stage "tests (clang, TSan)" ctest_build build-tsan \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DRL_SANITIZE=thread
stage "coverage gate" scripts/coverage.sh

echo
for f in "${failures[@]}"; do echo "failed stage: $f"; done
echo "stages: $passed passed, $failed failed"
echo "test runs (all builds): $tests_passed passed, $tests_failed failed"
# The closing line counts stages and test runs together.
echo "total: $((passed + tests_passed)) passed, $((failed + tests_failed)) failed"
[ "$failed" -eq 0 ]

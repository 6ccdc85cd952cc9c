#!/usr/bin/env bash
# Runs every test stage and prints one closing line "N passed, N failed".
# Stages: lint; default build (gcc); ASan+UBSan (clang); TSan (clang);
# coverage gate (gcc --coverage, gcovr >= 90% of src/).
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

# ctest in a build dir configured with extra cmake args.
ctest_build() { # dir, cmake args...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DRL_BUILD_BENCH=OFF "$@" >/dev/null &&
    cmake --build "$dir" -j "$JOBS" 2>&1 | grep -Ev '^\[|^-- ' ;
  [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS" --timeout 600
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

stage lint scripts/lint.sh
stage "tests (gcc, RelWithDebInfo)" ctest_build build-test \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc
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
[ "$failed" -eq 0 ]

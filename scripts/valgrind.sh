#!/usr/bin/env bash
# Runs the library's tests (ctest labels unit, model, concurrency) under
# valgrind memcheck: any invalid access, uninitialised read or definite leak
# fails. Usage: scripts/valgrind.sh BUILD_DIR
set -uo pipefail
dir=${1:?build dir}
export RL_MODEL_DECISIONS=${RL_MODEL_DECISIONS:-200000}
# The reconfiguration race is checked by the TSan and ASan builds; under
# valgrind's one-thread-at-a-time scheduler its spinning deciders can starve
# the writer for minutes.
export RL_TEST_RECONFIGS=${RL_TEST_RECONFIGS:-0}
mapfile -t cmds < <(ctest --test-dir "$dir" -L 'unit|model|concurrency' \
  --show-only=json-v1 | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tests"]:
    print(t["command"][0])')
fail=0
for cmd in "${cmds[@]}"; do
  log="$dir/valgrind-$(basename "$cmd").log"
  # --fair-sched: round-robin threads, so a spinning or yielding thread (the
  # store race test's deciders, a node lock's waiter) cannot hold the one
  # running slot while the thread it waits for sits out: the stage took 81
  # to 299 s without it, 52 s with it, same tests.
  if valgrind -q --error-exitcode=99 --leak-check=full --fair-sched=try \
    --errors-for-leak-kinds=definite,indirect --max-threads=1200 \
    "$cmd" >"$log.out" 2>"$log"; then
    echo "valgrind: $(basename "$cmd") clean"
  else
    echo "valgrind: $(basename "$cmd") FAILED (see $log)"
    tail -n 30 "$log"
    fail=1
  fi
done
exit $fail

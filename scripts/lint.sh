#!/usr/bin/env bash
# Static checks: clang-format (no diff allowed), clang-tidy (.clang-tidy, on
# the library, ratelimitd and the middleware), cppcheck. Exits non-zero on
# any finding.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find src include tests bench examples -name '*.[ch]')
mapfile -t lib_c < <(printf '%s\n' "${files[@]}" | grep -E '^src/.*\.c$')
mapfile -t daemon_c < <(printf '%s\n' "${files[@]}" | grep -E '^(daemon|middleware)/.*\.c$')

echo "lint: clang-format"
if ! clang-format --dry-run -Werror "${files[@]}"; then status=1; fi

echo "lint: clang-tidy"
cmake -S . -B build-lint -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DRL_BUILD_BENCH=OFF >/dev/null
# (the findings are what counts: clang-tidy's own exit status also reflects
# compile-database noise, and a pipeline would mask one or the other)
tidy_out=$(clang-tidy -p build-lint --quiet "${lib_c[@]}" "${daemon_c[@]}" 2>/dev/null)
if grep -E 'warning:|error:' <<<"$tidy_out"; then status=1; fi

echo "lint: cppcheck"
if ! cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
  --inline-suppr --std=c11 -Iinclude -Isrc -D__GNUC__ "${lib_c[@]}"; then status=1; fi
if ! cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
  --inline-suppr --std=c11 -Iinclude -Idaemon -Imiddleware -D__GNUC__ "${daemon_c[@]}"; then status=1; fi

[ $status -eq 0 ] && echo "lint: clean"
exit $status
